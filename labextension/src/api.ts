// The server extension's JSON API (nbmlops/jupyter_server/handlers.py), reached through Jupyter's own
// ServerConnection: its base URL, token and XSRF header, so the panel inherits Jupyter's auth.
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

export interface IStore {
  path: string;
  exists: boolean;
  root?: string;
  hint?: string | null;
  stores?: { path: string; relative: string; shown: boolean }[];
}

export interface IExperiment {
  id: string;
  name: string;
  runs: number;
  created: number | null;
}

export interface IRun {
  id: string;
  name: string;
  status: string;
  start_time: number | null;
  metrics: { [key: string]: number };
}

export interface IRunsPage {
  runs: IRun[];
  next_offset: number | null;
}

export interface IVersion {
  version: number;
  aliases: string[];
  created: number | null;
  run: string | null;
  metrics: { [key: string]: number };
}

export interface IModel {
  name: string;
  latest_version: number | null;
  aliases: { [alias: string]: number };
  versions: IVersion[];
}

export interface IDeployment {
  name: string;
  model: string;
  version: number | null;
  status: string;
  url: string | null;
  requests?: number | null;
  started: number | null;
}

export interface IDriftReport {
  id: string;
  model: string | null;
  version: number | null;
  time: number | null;
  dataset_drift: boolean | null;
  n_drifted: number | null;
  n_columns: number | null;
  drifted_columns: string;
  html_url: string;
}

/** GET ``nbmlops/api/<path>`` as JSON; rejects with the server's ``{"error": ...}`` message. */
export async function get<T>(path: string, query: { [key: string]: string | number | boolean } = {}): Promise<T> {
  const settings = ServerConnection.makeSettings();
  const params = Object.keys(query)
    .map(k => `${encodeURIComponent(k)}=${encodeURIComponent(String(query[k]))}`)
    .join('&');
  const url = URLExt.join(settings.baseUrl, 'nbmlops', 'api', path) + (params ? `?${params}` : '');
  let response: Response;
  try {
    response = await ServerConnection.makeRequest(url, {}, settings);
  } catch (err) {
    throw new Error(`the Jupyter server did not answer (${(err as Error).message})`);
  }
  const raw = await response.text();
  let payload: any = null;
  try {
    payload = raw ? JSON.parse(raw) : null;
  } catch {
    payload = null;
  }
  if (!response.ok) {
    if (response.status === 404 && !(payload && payload.error)) {
      throw new Error('the nbmlops server extension is not enabled in this Jupyter server (no nbmlops/api)');
    }
    throw new Error(payload && payload.error ? payload.error : `${response.status} ${response.statusText}`);
  }
  if (payload === null) {
    throw new Error(`nbmlops/api/${path} answered something that is not JSON`);
  }
  return payload as T;
}

/** The dashboard page's URL, with a view's hash route (``#/compare?runs=a,b``). */
export function dashboardUrl(route = ''): string {
  const base = URLExt.join(ServerConnection.makeSettings().baseUrl, 'nbmlops/');
  return route ? `${base}#${route.startsWith('/') ? route : '/' + route}` : base;
}

/** A saved drift report page (self-contained HTML, served under a strict CSP). */
export function driftUrl(id: string): string {
  return URLExt.join(ServerConnection.makeSettings().baseUrl, 'nbmlops', 'api', 'drift',
    encodeURIComponent(id), 'html');
}
