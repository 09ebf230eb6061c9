// The left-sidebar panel: experiments -> runs (with their key metric), models -> versions and aliases,
// deployments (live status, polled while the panel is shown) and drift reports. Plain DOM: every stored
// string reaches the page through textContent or setAttribute, never as HTML.
import { launchIcon, LabIcon, refreshIcon } from '@jupyterlab/ui-components';
import { Widget } from '@lumino/widgets';

import {
  get,
  IDeployment,
  IDriftReport,
  IExperiment,
  IModel,
  IRunsPage,
  IStore
} from './api';
import { IView } from './views';

const RUNS_SHOWN = 25;
const DRIFT_SHOWN = 20;
const POLL_MS = 10_000;
export const MAX_COMPARE = 10;
// metrics people read first, in this order; otherwise the first metric name in alphabetical order
const KEY_METRICS = ['auc', 'roc_auc', 'accuracy', 'f1', 'r2', 'rmse', 'mae', 'loss'];

type Attrs = { [name: string]: string };

function el(tag: string, attrs: Attrs = {}, children: (Node | string)[] = []): HTMLElement {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'text') {
      node.textContent = v;
    } else {
      node.setAttribute(k, v);
    }
  }
  for (const c of children) {
    node.appendChild(typeof c === 'string' ? document.createTextNode(c) : c);
  }
  return node;
}

function iconButton(icon: LabIcon, action: string, title: string): HTMLElement {
  const button = el('button', { class: 'jp-nbmlops-button jp-nbmlops-icon', title, 'aria-label': title,
    'data-action': action });
  button.appendChild(icon.element({ tag: 'span', elementPosition: 'center', height: '16px', width: '16px' }));
  return button;
}

/** A store's path as it fits a line: relative to Jupyter's root when below it, else its last two folders. */
export function shortPath(path: string): string {
  if (!path.startsWith('/')) {
    return path;
  }
  const parts = path.split('/').filter(Boolean);
  return parts.length > 2 ? `…/${parts.slice(-2).join('/')}` : path;
}

function fmtNumber(v: unknown): string {
  if (typeof v !== 'number') {
    return v === null || v === undefined ? '' : String(v);
  }
  return Number.isInteger(v) ? String(v) : v.toPrecision(4);
}

/** "3 days ago", as people say it. */
export function ago(ms: number | null | undefined, now = Date.now()): string {
  if (!ms) {
    return '';
  }
  const s = Math.max(0, (now - ms) / 1000);
  const units: [number, string][] = [[86400 * 365, 'year'], [86400 * 30, 'month'], [86400 * 7, 'week'],
    [86400, 'day'], [3600, 'hour'], [60, 'minute']];
  for (const [size, name] of units) {
    const n = Math.floor(s / size);
    if (n >= 1) {
      return `${n} ${name}${n > 1 ? 's' : ''} ago`;
    }
  }
  return 'just now';
}

/** The metric to show beside each run of a list: a well-known one most runs have, else the first name. */
export function keyMetric(runs: { metrics: { [key: string]: number } }[]): string | null {
  const counts = new Map<string, number>();
  for (const r of runs) {
    for (const k of Object.keys(r.metrics || {})) {
      counts.set(k, (counts.get(k) || 0) + 1);
    }
  }
  if (counts.size === 0) {
    return null;
  }
  const known = KEY_METRICS.filter(k => counts.has(k));
  if (known.length) {
    return known.sort((a, b) => counts.get(b)! - counts.get(a)!)[0];
  }
  return [...counts.keys()].sort()[0];
}

export interface ISidebarOptions {
  /** Open a dashboard view or a drift report in a tab. */
  open: (view: IView) => void;
  /** Called when the runs selected for comparison change. */
  selectionChanged: () => void;
}

export class NbmlopsSidebar extends Widget {
  constructor(options: ISidebarOptions) {
    super();
    this._options = options;
    this.id = 'nbmlops-sidebar';
    this.addClass('jp-nbmlops-sidebar');
    this.title.caption = 'nbmlops: experiments, models, deployments, drift';

    const refresh = iconButton(refreshIcon, 'refresh', 'Reload from the store');
    refresh.addEventListener('click', () => void this.refresh());
    const dashboard = iconButton(launchIcon, 'dashboard', 'Open the nbmlops dashboard in a tab');
    dashboard.addEventListener('click', () => options.open({ kind: 'dashboard', route: '', label: 'nbmlops' }));
    this._compare = el('button', { class: 'jp-nbmlops-button', 'data-action': 'compare',
      title: `Compare the runs ticked below (2 to ${MAX_COMPARE})` }) as HTMLButtonElement;
    this._compare.addEventListener('click', () => this.compareSelected());

    this._store = el('div', { class: 'jp-nbmlops-store' });
    this._error = el('div', { class: 'jp-nbmlops-error', role: 'alert' });
    this._experiments = el('ul', { class: 'jp-nbmlops-list' });
    this._models = el('ul', { class: 'jp-nbmlops-list' });
    this._deployments = el('ul', { class: 'jp-nbmlops-list' });
    this._drift = el('ul', { class: 'jp-nbmlops-list' });
    const section = (name: string, title: string, list: HTMLElement) => {
      const count = el('span', { class: 'jp-nbmlops-count' });
      this._counts[name] = count;
      return el('details', { class: 'jp-nbmlops-section', open: '', 'data-section': name },
        [el('summary', {}, [title, count]), list]);
    };
    const body = el('div', { class: 'jp-nbmlops-body' }, [
      section('experiments', 'Experiments', this._experiments),
      section('models', 'Models', this._models),
      section('deployments', 'Deployments', this._deployments),
      section('drift', 'Drift reports', this._drift)
    ]);
    this.node.append(
      el('div', { class: 'jp-nbmlops-header' }, [el('span', { class: 'jp-nbmlops-title', text: 'nbmlops' }),
        this._compare, refresh, dashboard]),
      this._store, this._error, body);
    this._drawCompare();
  }

  /** The runs ticked for comparison, in the order they were ticked. */
  get selected(): { id: string; name: string }[] {
    return [...this._selected.entries()].map(([id, name]) => ({ id, name }));
  }

  /** Open the comparison of the ticked runs (or say how many to tick). */
  compareSelected(): boolean {
    const runs = this.selected;
    if (runs.length < 2 || runs.length > MAX_COMPARE) {
      this._showErrors([['', `tick 2 to ${MAX_COMPARE} runs to compare (${runs.length} ticked)`]]);
      return false;
    }
    this._options.open(compareView(runs));
    return true;
  }

  /** Reload everything from the API; the error line says what failed, the rest still shows. */
  async refresh(): Promise<void> {
    const generation = ++this._generation;
    this.node.classList.add('jp-nbmlops-loading');
    const errors: [string, string][] = [];
    const part = async <T>(what: string, load: () => Promise<T>, draw: (value: T) => void) => {
      try {
        const value = await load();
        if (generation === this._generation) {
          draw(value);
        }
      } catch (err) {
        errors.push([what, (err as Error).message]);
      }
    };
    // the open experiments' runs as soon as their list is drawn, not after the slower parts
    const runs = async () => {
      await Promise.all([...this._open].map(id => this._loadRuns(id).catch(err => {
        errors.push(['runs', (err as Error).message]);
      })));
    };
    await Promise.all([
      part('store', () => get<IStore>('store'), s => this._drawStore(s)),
      part('experiments', () => get<{ experiments: IExperiment[] }>('experiments'),
        r => this._drawExperiments(r.experiments)).then(() => (generation === this._generation ? runs() : undefined)),
      part('models', () => get<{ models: IModel[] }>('models'), r => this._drawModels(r.models)),
      part('deployments', () => this._loadDeployments(), d => this._drawDeployments(d)),
      part('drift reports', () => get<{ reports: IDriftReport[] }>('drift', { limit: DRIFT_SHOWN }),
        r => this._drawDrift(r.reports))
    ]);
    if (generation === this._generation) {
      this.node.classList.remove('jp-nbmlops-loading');
      this._showErrors(errors);
      this._loaded = true;
    }
  }

  protected onAfterShow(): void {
    if (!this._loaded) {
      void this.refresh();
    }
    this._startPolling();
  }

  protected onAfterHide(): void {
    this._stopPolling();
  }

  dispose(): void {
    this._stopPolling();
    super.dispose();
  }

  private _startPolling(): void {
    this._stopPolling();
    this._poll = window.setInterval(() => {
      if (!this.isVisible || document.hidden) {
        return;
      }
      this._loadDeployments().then(d => this._drawDeployments(d), () => undefined);
    }, POLL_MS);
  }

  private _stopPolling(): void {
    if (this._poll) {
      window.clearInterval(this._poll);
      this._poll = 0;
    }
  }

  /** One line: each message once, first (it is what the narrow panel shows), then the parts it came from. */
  private _showErrors(errors: [string, string][]): void {
    const parts = new Map<string, string[]>();
    for (const [what, message] of errors) {
      parts.set(message, [...(parts.get(message) || []), ...(what ? [what] : [])]);
    }
    const lines = [...parts.entries()].map(([message, whats]) => message + (whats.length ? ` (${whats.join(', ')})` : ''));
    this._error.textContent = lines.join('; ');
    this._error.title = lines.join('\n');
    this._error.hidden = lines.length === 0;
  }

  private _drawStore(s: IStore): void {
    const shown = (s.stores || []).find(x => x.shown);
    this._store.textContent = `store: ${shortPath(shown ? shown.relative : s.path)}${s.exists ? '' : ' (empty: nothing logged yet)'}`;
    this._store.title = s.hint || s.path;
  }

  private _item(cls: string, label: string, title: string, onClick: () => void, extra: (Node | string)[] = []) {
    const link = el('a', { class: 'jp-nbmlops-link', href: '#', title, text: label });
    link.addEventListener('click', ev => {
      ev.preventDefault();
      onClick();
    });
    return el('li', { class: cls }, [link, ...extra]);
  }

  private _empty(list: HTMLElement, text: string): void {
    list.replaceChildren(el('li', { class: 'jp-nbmlops-empty', text }));
  }

  private _drawExperiments(experiments: IExperiment[]): void {
    this._counts.experiments.textContent = ` (${experiments.length})`;
    this._runLists.clear();
    if (!experiments.length) {
      this._empty(this._experiments, 'no experiments yet: %%track a cell or nbmlops.start_run()');
      return;
    }
    const ids = new Set(experiments.map(e => e.id));
    this._open = new Set([...this._open].filter(id => ids.has(id)));
    if (!this._loaded && this._open.size === 0) { // the first time, the newest experiment is open
      const newest = experiments.reduce((a, b) => ((b.created || 0) > (a.created || 0) ? b : a));
      this._open.add(newest.id);
    }
    this._experiments.replaceChildren(...experiments.map(exp => {
      const runs = el('ul', { class: 'jp-nbmlops-runs' });
      this._runLists.set(exp.id, runs);
      const details = el('details', { 'data-experiment': exp.name }, [
        el('summary', { title: `experiment ${exp.name} (${exp.id})` },
          [el('span', { class: 'jp-nbmlops-name', text: exp.name }),
            el('span', { class: 'jp-nbmlops-meta', text: `${exp.runs} run${exp.runs === 1 ? '' : 's'}` })]),
        runs
      ]) as HTMLDetailsElement;
      details.open = this._open.has(exp.id);
      details.addEventListener('toggle', () => { // also fired (later) for the open state set just above
        if (details.open && !this._open.has(exp.id)) {
          this._open.add(exp.id);
          this._loadRuns(exp.id).catch(err => this._showErrors([['runs', (err as Error).message]]));
        } else if (!details.open) {
          this._open.delete(exp.id);
        }
      });
      return el('li', {}, [details]);
    }));
  }

  private async _loadRuns(experimentId: string): Promise<void> {
    const list = this._runLists.get(experimentId);
    if (!list) {
      return;
    }
    const page = await get<IRunsPage>(`experiments/${encodeURIComponent(experimentId)}/runs`,
      { max_results: RUNS_SHOWN });
    if (this._runLists.get(experimentId) !== list) {
      return; // redrawn meanwhile
    }
    if (!page.runs.length) {
      this._empty(list, 'no runs');
      return;
    }
    const key = keyMetric(page.runs);
    const rows = page.runs.map(run => {
      const box = el('input', { type: 'checkbox', title: 'tick to compare', 'data-run': run.id }) as HTMLInputElement;
      box.checked = this._selected.has(run.id);
      box.addEventListener('change', () => {
        if (box.checked) {
          this._selected.set(run.id, run.name);
        } else {
          this._selected.delete(run.id);
        }
        this._updateCompare();
      });
      const value = key !== null && run.metrics[key] !== undefined ? `${key} ${fmtNumber(run.metrics[key])}` : '';
      const label = el('span', { class: `jp-nbmlops-status jp-nbmlops-status-${run.status.toLowerCase()}`,
        title: run.status });
      const li = this._item('jp-nbmlops-run', run.name, `run ${run.name} (${run.id}), ${run.status}, ` +
        `started ${ago(run.start_time)}`, () => this._options.open(runView(run)),
        [el('span', { class: 'jp-nbmlops-metric', text: value })]);
      li.prepend(box, label);
      li.setAttribute('data-run', run.id);
      return li;
    });
    if (page.next_offset !== null) {
      rows.push(this._item('jp-nbmlops-more', 'more in the dashboard…', 'every run of this experiment',
        () => this._options.open({ kind: 'dashboard', route: '', label: 'nbmlops' })));
    }
    list.replaceChildren(...rows);
  }

  private _updateCompare(): void {
    this._drawCompare();
    this._options.selectionChanged();
  }

  private _drawCompare(): void {
    const n = this._selected.size;
    this._compare.textContent = n ? `Compare (${n})` : 'Compare';
    this._compare.disabled = n < 2 || n > MAX_COMPARE;
  }

  private _drawModels(models: IModel[]): void {
    this._counts.models.textContent = ` (${models.length})`;
    if (!models.length) {
      this._empty(this._models, 'no registered models yet: nbmlops.register_model() or %register');
      return;
    }
    this._models.replaceChildren(...models.map(model => {
      const aliases = Object.entries(model.aliases).map(([a, v]) => `@${a} v${v}`).join(' ');
      const metric = keyMetric(model.versions);
      const versions = [...model.versions].reverse().map(v => {
        const chips = v.aliases.map(a => el('span', { class: 'jp-nbmlops-alias', text: `@${a}` }));
        return this._item('jp-nbmlops-version', `v${v.version}`, `${model.name} version ${v.version}` +
          (v.run ? ` from run ${v.run}` : '') + `, registered ${ago(v.created)}`,
          () => this._options.open({ kind: 'dashboard', route: `/model/${encodeURIComponent(model.name)}/${v.version}`,
            label: `${model.name} v${v.version}` }),
          [...chips, el('span', { class: 'jp-nbmlops-metric',
            text: metric !== null && v.metrics[metric] !== undefined ? `${metric} ${fmtNumber(v.metrics[metric])}` : ''
          })]);
      });
      const details = el('details', { 'data-model': model.name }, [
        el('summary', { title: `model ${model.name}` }, [el('span', { class: 'jp-nbmlops-name', text: model.name }),
          el('span', { class: 'jp-nbmlops-meta',
            text: `${model.versions.length} version${model.versions.length === 1 ? '' : 's'} ${aliases}` })]),
        el('ul', { class: 'jp-nbmlops-versions' }, versions)
      ]) as HTMLDetailsElement;
      details.open = this._openModels.has(model.name);
      details.addEventListener('toggle', () => {
        if (details.open) {
          this._openModels.add(model.name);
        } else {
          this._openModels.delete(model.name);
        }
      });
      return el('li', {}, [details]);
    }));
  }

  private async _loadDeployments(): Promise<IDeployment[]> {
    const r = await get<{ deployments: IDeployment[] }>('deployments', { all: true, live: true });
    return r.deployments;
  }

  private _drawDeployments(deployments: IDeployment[]): void {
    // newest record of each name (a name is reused when a model is served again)
    const seen = new Set<string>();
    const rows = deployments.filter(d => !seen.has(d.name) && seen.add(d.name));
    const running = rows.filter(d => d.status === 'running' || d.status === 'starting').length;
    this._counts.deployments.textContent = ` (${running} running)`;
    if (!rows.length) {
      this._empty(this._deployments, 'no deployments yet: nbmlops.serve() or %serve');
      return;
    }
    this._deployments.replaceChildren(...rows.map(d => {
      const live = d.status === 'running' || d.status === 'starting';
      const detail = live ? `${d.requests ?? 0} req` : d.status;
      const li = this._item('jp-nbmlops-deployment', d.name, `${d.name}: ${d.model} v${d.version ?? '?'}, ` +
        `${d.status}${live && d.url ? ' at ' + d.url : ''}`,
      () => this._options.open({ kind: 'dashboard', route: `/deployment/${encodeURIComponent(d.name)}`,
        label: `deployment ${d.name}` }),
      [el('span', { class: 'jp-nbmlops-metric', text: detail }),
        el('span', { class: 'jp-nbmlops-meta', text: `${d.model}` })]);
      li.prepend(el('span', { class: `jp-nbmlops-status jp-nbmlops-status-${d.status}`, title: d.status }));
      li.setAttribute('data-deployment', d.name);
      li.setAttribute('data-status', d.status);
      return li;
    }));
  }

  private _drawDrift(reports: IDriftReport[]): void {
    this._counts.drift.textContent = ` (${reports.length}${reports.length === DRIFT_SHOWN ? '+' : ''})`;
    if (!reports.length) {
      this._empty(this._drift, 'no drift reports yet: nbmlops.drift_report(...).log() or %drift');
      return;
    }
    this._drift.replaceChildren(...reports.map(r => {
      const li = this._item('jp-nbmlops-drift', driftLabel(r), `drift report ${r.id}: ` +
        `${r.n_drifted ?? '?'} of ${r.n_columns ?? '?'} columns drifted, ${ago(r.time)}` +
        (r.drifted_columns ? `; drifted: ${r.drifted_columns}` : ''), () => this._options.open(driftView(r)),
      [el('span', { class: 'jp-nbmlops-metric', text: `${r.n_drifted ?? '?'}/${r.n_columns ?? '?'}` }),
        el('span', { class: 'jp-nbmlops-meta', text: ago(r.time) })]);
      li.prepend(el('span', { class: `jp-nbmlops-status jp-nbmlops-drift-${r.dataset_drift ? 'yes' : 'no'}`,
        title: r.dataset_drift ? 'dataset drift' : 'no dataset drift' }));
      li.setAttribute('data-drift', r.id);
      return li;
    }));
  }

  private _options: ISidebarOptions;
  private _store: HTMLElement;
  private _error: HTMLElement;
  private _compare: HTMLButtonElement;
  private _experiments: HTMLElement;
  private _models: HTMLElement;
  private _deployments: HTMLElement;
  private _drift: HTMLElement;
  private _counts: { [section: string]: HTMLElement } = {};
  private _runLists = new Map<string, HTMLElement>();
  private _open = new Set<string>();
  private _openModels = new Set<string>();
  private _selected = new Map<string, string>();
  private _generation = 0;
  private _loaded = false;
  private _poll = 0;
}

export function runView(run: { id: string; name: string }): IView {
  return { kind: 'dashboard', route: `/run/${encodeURIComponent(run.id)}`, label: `run ${run.name}` };
}

export function compareView(runs: { id: string; name: string }[]): IView {
  return { kind: 'dashboard', route: `/compare?runs=${runs.map(r => encodeURIComponent(r.id)).join(',')}`,
    label: `compare ${runs.length} runs` };
}

export function driftLabel(r: IDriftReport): string {
  return r.model ? `${r.model}${r.version !== null ? ` v${r.version}` : ''}` : 'drift report';
}

export function driftView(r: IDriftReport): IView {
  return { kind: 'drift', route: r.id, label: `drift ${driftLabel(r)}` };
}
