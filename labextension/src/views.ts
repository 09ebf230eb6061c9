// The dashboard's views and the saved drift reports as main-area tabs beside the notebook (an IFrame
// onto the dashboard page with a hash route); one tab per view, found again when asked twice.
import { MainAreaWidget, WidgetTracker } from '@jupyterlab/apputils';
import { IFrame, LabIcon } from '@jupyterlab/ui-components';

import { dashboardUrl, driftUrl } from './api';

/** A dashboard view (``route`` is its hash route, '' for the start page) or a drift report (``route`` is its id). */
export interface IView {
  kind: 'dashboard' | 'drift';
  route: string;
  label: string;
}

export function viewUrl(view: IView): string {
  return view.kind === 'drift' ? driftUrl(view.route) : dashboardUrl(view.route);
}

// the dashboard page needs its own origin (cookies, XSRF) and may offer downloads; a drift report is a
// self-contained page whose one sort script runs in an opaque origin (the server's CSP sandboxes it too)
const SANDBOX: { [kind: string]: IFrame.SandboxExceptions[] } = {
  dashboard: ['allow-scripts', 'allow-same-origin', 'allow-forms', 'allow-downloads', 'allow-popups'],
  drift: ['allow-scripts']
};

export type ViewWidget = MainAreaWidget<IFrame> & { view: IView };

export function createView(view: IView, icon: LabIcon): ViewWidget {
  const frame = new IFrame({ sandbox: SANDBOX[view.kind], referrerPolicy: 'same-origin' });
  frame.url = viewUrl(view);
  frame.addClass('jp-nbmlops-frame');
  const widget = new MainAreaWidget({ content: frame }) as ViewWidget;
  widget.view = view;
  widget.id = `nbmlops-view-${view.kind}-${hash(view.route)}`;
  widget.title.label = view.label;
  widget.title.caption = `nbmlops: ${view.label}`;
  widget.title.icon = icon;
  widget.title.closable = true;
  widget.addClass('jp-nbmlops-view');
  widget.node.setAttribute('data-nbmlops-view', `${view.kind}:${view.route}`);
  return widget;
}

export function findView(tracker: WidgetTracker<ViewWidget>, view: IView): ViewWidget | undefined {
  return tracker.find(w => w.view.kind === view.kind && w.view.route === view.route);
}

function hash(text: string): string {
  let h = 5381;
  for (let i = 0; i < text.length; i++) {
    h = ((h << 5) + h + text.charCodeAt(i)) | 0;
  }
  return (h >>> 0).toString(36);
}
