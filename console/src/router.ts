// Client-side routes under /console/ (the gateway serves index.html for each of them). History API
// only: a link is a real <a href>, so it can be opened in a new tab and is read as a link.
import { useEffect, useState } from 'preact/hooks';

export const BASE = '/console';
const listeners = new Set<() => void>();

/** The path under /console, always starting with `/`, without a trailing slash (but `/`). */
export function currentPath(): string {
  const rest = location.pathname.startsWith(BASE) ? location.pathname.slice(BASE.length) : '/';
  const path = rest === '' ? '/' : rest;
  return path.length > 1 && path.endsWith('/') ? path.slice(0, -1) : path;
}

export function navigate(path: string, replace = false): void {
  const url = BASE + path;
  if (replace) history.replaceState(null, '', url);
  else history.pushState(null, '', url);
  for (const listener of listeners) listener();
}

export function useRoute(): { path: string; search: URLSearchParams } {
  const [, setRound] = useState(0);
  useEffect(() => {
    const listener = () => setRound((r) => r + 1);
    listeners.add(listener);
    addEventListener('popstate', listener);
    return () => {
      listeners.delete(listener);
      removeEventListener('popstate', listener);
    };
  }, []);
  return { path: currentPath(), search: new URLSearchParams(location.search) };
}

/** Follows a link inside the app without reloading, unless a modifier asks for a new tab or window. */
export function follow(event: MouseEvent, path: string): void {
  if (event.defaultPrevented || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
  event.preventDefault();
  navigate(path);
}
