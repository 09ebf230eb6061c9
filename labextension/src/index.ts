// nbmlops inside JupyterLab (and Notebook 7 where its shell allows): a left-sidebar panel, a launcher
// tile and palette commands that open the dashboard's views and drift reports as tabs beside the notebook.
// Everything it shows comes from the server extension's API (nbmlops/jupyter_server/handlers.py).
import {
  ILabShell,
  ILayoutRestorer,
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { ICommandPalette, InputDialog, Notification, WidgetTracker } from '@jupyterlab/apputils';
import { ILauncher } from '@jupyterlab/launcher';
import { LabIcon } from '@jupyterlab/ui-components';

import { get, IDriftReport } from './api';
import { compareView, driftLabel, driftView, MAX_COMPARE, NbmlopsSidebar } from './sidebar';
import { createView, findView, IView, viewUrl, ViewWidget } from './views';

const CATEGORY = 'nbmlops';

export const CommandIDs = {
  openDashboard: 'nbmlops:open-dashboard',
  compareRuns: 'nbmlops:compare-runs',
  openDrift: 'nbmlops:open-drift-report',
  openView: 'nbmlops:open-view',
  refresh: 'nbmlops:refresh-sidebar'
};

// a flask over a rising curve
const ICON_SVG = `<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16" viewBox="0 0 24 24">
<g class="jp-icon3" fill="#616161"><path d="M9 2h6v2h-1v5.2l5.6 9.3A2 2 0 0 1 17.9 21H6.1a2 2 0 0 1-1.7-2.5L10 9.2V4H9z
M12 11l-4.2 7h8.4z"/></g></svg>`;

export const nbmlopsIcon = new LabIcon({ name: 'nbmlops:icon', svgstr: ICON_SVG });

const plugin: JupyterFrontEndPlugin<void> = {
  id: 'nbmlops:plugin',
  description: 'nbmlops sidebar, launcher tile and commands: experiments, runs, models, deployments, drift reports.',
  autoStart: true,
  optional: [ILabShell, ILayoutRestorer, ICommandPalette, ILauncher],
  activate: (
    app: JupyterFrontEnd,
    labShell: ILabShell | null,
    restorer: ILayoutRestorer | null,
    palette: ICommandPalette | null,
    launcher: ILauncher | null
  ) => {
    const { commands, shell } = app;
    const tracker = new WidgetTracker<ViewWidget>({ namespace: 'nbmlops-views' });

    // JupyterLab: a tab in the main area. Notebook 7's main area holds one document per browser tab,
    // so there the view opens in a new browser tab.
    const open = (view: IView): void => {
      if (!labShell) {
        window.open(viewUrl(view), '_blank', 'noopener');
        return;
      }
      const existing = findView(tracker, view);
      if (existing) {
        shell.activateById(existing.id);
        return;
      }
      // the first view splits the main area beside the notebook; later ones join it as tabs
      const last = tracker.currentWidget;
      const widget = createView(view, nbmlopsIcon);
      void tracker.add(widget);
      shell.add(widget, 'main', last && last.isAttached ? { mode: 'tab-after', ref: last.id, activate: true }
        : { mode: 'split-right', activate: true });
    };

    const sidebar = new NbmlopsSidebar({
      open,
      selectionChanged: () => commands.notifyCommandChanged(CommandIDs.compareRuns)
    });
    sidebar.title.icon = nbmlopsIcon;
    shell.add(sidebar, 'left', { rank: 850 });

    commands.addCommand(CommandIDs.openDashboard, {
      label: args => (args.isLauncher ? 'nbmlops dashboard' : 'nbmlops: open dashboard'),
      caption: 'The nbmlops dashboard (runs, models, deployments, drift) in a tab',
      icon: args => (args.isPalette ? undefined : nbmlopsIcon),
      execute: args => open({ kind: 'dashboard', route: (args.route as string) || '',
        label: (args.label as string) || 'nbmlops' })
    });

    commands.addCommand(CommandIDs.compareRuns, {
      label: () => {
        const n = sidebar.selected.length;
        return `nbmlops: compare selected runs${n ? ` (${n})` : ''}`;
      },
      caption: `Compare the runs ticked in the nbmlops sidebar (2 to ${MAX_COMPARE})`,
      execute: args => {
        const ids = args.runs as string[] | undefined;
        if (ids && ids.length) {
          open(compareView(ids.map(id => ({ id, name: id }))));
          return;
        }
        if (!sidebar.compareSelected()) {
          Notification.warning(`Tick 2 to ${MAX_COMPARE} runs in the nbmlops sidebar to compare them ` +
            `(${sidebar.selected.length} ticked).`, { autoClose: 5000 });
          shell.activateById(sidebar.id);
        }
      }
    });

    commands.addCommand(CommandIDs.openDrift, {
      label: 'nbmlops: open drift report',
      caption: 'A logged drift report in a tab (the newest, or one picked from the list)',
      execute: async args => {
        if (args.id) {
          open({ kind: 'drift', route: args.id as string, label: (args.label as string) || 'drift report' });
          return;
        }
        let reports: IDriftReport[];
        try {
          reports = (await get<{ reports: IDriftReport[] }>('drift', { limit: 50 })).reports;
        } catch (err) {
          Notification.error(`nbmlops: ${(err as Error).message}`, { autoClose: 8000 });
          return;
        }
        if (!reports.length) {
          Notification.info('No drift reports in the store yet: nbmlops.drift_report(...).log() or %drift logs one.',
            { autoClose: 5000 });
          return;
        }
        let chosen = reports[0];
        if (reports.length > 1) {
          const labels = reports.map(r => `${driftLabel(r)}, ${new Date(r.time || 0).toLocaleString()} (${r.id.slice(0, 8)})`);
          const answer = await InputDialog.getItem({ title: 'Open a drift report', items: labels, current: 0 });
          if (!answer.button.accept || answer.value === null) {
            return;
          }
          chosen = reports[Math.max(0, labels.indexOf(answer.value))];
        }
        open(driftView(chosen));
      }
    });

    commands.addCommand(CommandIDs.openView, {
      label: 'nbmlops: open view',
      execute: args => open({ kind: args.kind === 'drift' ? 'drift' : 'dashboard',
        route: (args.route as string) || '', label: (args.label as string) || 'nbmlops' })
    });

    commands.addCommand(CommandIDs.refresh, {
      label: 'nbmlops: refresh sidebar',
      execute: () => sidebar.refresh()
    });

    if (palette) {
      for (const command of [CommandIDs.openDashboard, CommandIDs.compareRuns, CommandIDs.openDrift,
        CommandIDs.refresh]) {
        palette.addItem({ command, category: CATEGORY, args: { isPalette: true } });
      }
    }
    if (launcher) {
      launcher.add({ command: CommandIDs.openDashboard, category: 'Other', rank: 50, args: { isLauncher: true } });
    }
    if (restorer) {
      restorer.add(sidebar, 'nbmlops-sidebar');
      void restorer.restore(tracker, {
        command: CommandIDs.openView,
        args: w => ({ kind: w.view.kind, route: w.view.route, label: w.view.label }),
        name: w => `${w.view.kind}:${w.view.route}`
      });
    }
  }
};

export default plugin;
