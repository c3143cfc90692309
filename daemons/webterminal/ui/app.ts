/// <reference lib="dom" />
// The web terminal page: login, target picker, and one terminal attached over a
// v5.channel.k8s.io WebSocket; heartbeats while open; the session id in the URL hash, so a
// reload re-attaches to the same session (the server replays its scrollback).
import { FitAddon } from '@xterm/addon-fit';
import { Terminal } from '@xterm/xterm';

const PROTOCOL = 'v5.channel.k8s.io';
const CH = { stdin: 0, stdout: 1, stderr: 2, status: 3, resize: 4 } as const;

interface TerminalInfo {
  id: string;
  target: string;
  readOnly: boolean;
  heartbeatIntervalMs: number;
  attach: { url: string };
}

const el = (id: string): HTMLElement => {
  const e = document.getElementById(id);
  if (e === null) throw new Error(`page has no #${id}`);
  return e;
};
const input = (id: string): HTMLInputElement => {
  const e = el(id);
  if (!(e instanceof HTMLInputElement)) throw new Error(`#${id} is no input`);
  return e;
};

class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

async function api<T>(method: string, path: string, body?: unknown, token?: string): Promise<T> {
  const headers: Record<string, string> = {};
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (token !== undefined) headers['authorization'] = `Bearer ${token}`;
  const res = await fetch(path, {
    method,
    headers,
    credentials: 'same-origin',
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await res.text();
  const json = (text === '' ? {} : JSON.parse(text)) as { message?: string };
  if (!res.ok) throw new ApiError(res.status, json.message ?? `HTTP ${res.status}`);
  return json as T;
}

function status(text: string, level: 'info' | 'error' = 'info'): void {
  const s = el('status');
  s.textContent = text;
  s.dataset['level'] = level;
}

function show(section: 'login' | 'picker' | 'term'): void {
  for (const id of ['login', 'picker', 'term']) el(id).hidden = id !== section;
  el('share-form').hidden = section !== 'term';
  el('close-btn').hidden = section !== 'term';
  el('back-btn').hidden = section !== 'term';
}

let current: { id: string; ws: WebSocket; heartbeat: number; ended: boolean } | undefined;
let term: Terminal | undefined;
let fit: FitAddon | undefined;
const enc = new TextEncoder();

function frame(channel: number, data: Uint8Array | string): Uint8Array {
  const body = typeof data === 'string' ? enc.encode(data) : data;
  const out = new Uint8Array(body.length + 1);
  out[0] = channel;
  out.set(body, 1);
  return out;
}

function send(channel: number, data: Uint8Array | string): void {
  if (current?.ws.readyState === WebSocket.OPEN) current.ws.send(frame(channel, data));
}

function ensureTerminal(): Terminal {
  if (term !== undefined) return term;
  term = new Terminal({ cursorBlink: true, scrollback: 5000, fontSize: 14 });
  fit = new FitAddon();
  term.loadAddon(fit);
  term.open(el('term'));
  term.onData((d) => {
    send(CH.stdin, d);
  });
  term.onResize(({ cols, rows }) => {
    send(CH.resize, JSON.stringify({ Width: cols, Height: rows }));
  });
  new ResizeObserver(() => fit?.fit()).observe(el('term'));
  window.addEventListener('resize', () => fit?.fit());
  return term;
}

function detach(): void {
  if (current === undefined) return;
  window.clearInterval(current.heartbeat);
  current.ended = true;
  current.ws.close();
  current = undefined;
}

function ended(message: string): void {
  if (current !== undefined) {
    window.clearInterval(current.heartbeat);
    current.ended = true;
  }
  document.body.dataset['state'] = 'ended';
  status(message, 'error');
  term?.write(`\r\n\x1b[31m[${message}]\x1b[0m\r\n`);
}

async function attach(id: string): Promise<void> {
  detach();
  status('waiting for the session…');
  let info: TerminalInfo;
  try {
    info = await api<TerminalInfo>('GET', `/api/terminals/${id}`);
  } catch (err) {
    history.replaceState(null, '', location.pathname);
    show('picker');
    status(`terminal ${id}: ${(err as Error).message}`, 'error');
    return;
  }
  location.hash = `#/terminals/${id}`;
  show('term');
  const t = ensureTerminal();
  t.reset();
  t.options.disableStdin = info.readOnly;
  fit?.fit();
  const ws = new WebSocket(info.attach.url, [PROTOCOL]);
  ws.binaryType = 'arraybuffer';
  const heartbeat = info.readOnly
    ? 0
    : window.setInterval(() => {
        api('POST', `/api/terminals/${id}/heartbeat`).catch((err: unknown) => {
          if (err instanceof ApiError && err.status === 404) ended('session expired');
        });
      }, info.heartbeatIntervalMs);
  const me = { id, ws, heartbeat, ended: false };
  current = me;
  ws.onopen = () => {
    document.body.dataset['session'] = id;
    document.body.dataset['state'] = 'attached';
    status(`${info.target} · ${id.slice(0, 8)}${info.readOnly ? ' · read-only' : ''}`);
    send(CH.resize, JSON.stringify({ Width: t.cols, Height: t.rows }));
    t.focus();
  };
  ws.onmessage = (ev: MessageEvent<ArrayBuffer>) => {
    const b = new Uint8Array(ev.data);
    if (b.length === 0) return;
    const data = b.subarray(1);
    if (b[0] === CH.stdout || b[0] === CH.stderr) t.write(data);
    else if (b[0] === CH.status) {
      const s = JSON.parse(new TextDecoder().decode(data)) as { status?: string; message?: string };
      ended(s.status === 'Success' ? 'session ended' : (s.message ?? 'session ended'));
    }
  };
  ws.onclose = () => {
    if (!me.ended) ended('connection closed');
  };
}

async function openTarget(name: string): Promise<void> {
  try {
    const s = await api<{ id: string }>('POST', '/api/terminals', { target: name });
    await attach(s.id);
  } catch (err) {
    status(`opening ${name}: ${(err as Error).message}`, 'error');
  }
}

async function showTargets(): Promise<void> {
  const { targets } = await api<{ targets: { name: string; title: string }[] }>(
    'GET',
    '/api/targets',
  );
  const ul = el('targets');
  ul.replaceChildren(
    ...targets.map((t) => {
      const li = document.createElement('li');
      const b = document.createElement('button');
      b.type = 'button';
      b.textContent = t.title;
      b.dataset['target'] = t.name;
      b.addEventListener('click', () => void openTarget(t.name));
      li.append(b);
      return li;
    }),
  );
  show('picker');
}

async function start(): Promise<void> {
  let who: { user: string };
  try {
    who = await api<{ user: string }>('GET', '/api/whoami');
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) {
      show('login');
      return;
    }
    throw err;
  }
  el('who').textContent = who.user;
  await showTargets();
  const m = /^#\/terminals\/([0-9a-f-]{36})$/.exec(location.hash);
  if (m !== null) await attach(m[1]!);
}

el('login-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const token = input('token').value;
  api('POST', '/api/login', undefined, token)
    .then(() => start())
    .catch((err: unknown) => {
      status(`login: ${(err as Error).message}`, 'error');
    });
});
el('share-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  const user = input('share-user').value.trim();
  if (current === undefined || user === '') return;
  api('POST', `/api/terminals/${current.id}/share`, { user })
    .then(() => {
      status(`shared read-only with ${user}`);
    })
    .catch((err: unknown) => {
      status(`sharing: ${(err as Error).message}`, 'error');
    });
});
el('close-btn').addEventListener('click', () => {
  if (current === undefined) return;
  const id = current.id;
  api('DELETE', `/api/terminals/${id}`).catch((err: unknown) => {
    status(`ending ${id}: ${(err as Error).message}`, 'error');
  });
});
el('back-btn').addEventListener('click', () => {
  detach();
  history.replaceState(null, '', location.pathname);
  void showTargets();
});

start().catch((err: unknown) => {
  status((err as Error).message, 'error');
});
