import { useEffect, useRef } from 'react';

/** Calls `f` now and every `ms` while the page is open: the lists update live. */
export function usePoll(f: () => void | Promise<void>, ms: number, deps: unknown[]) {
  const fn = useRef(f);
  fn.current = f;
  useEffect(() => {
    let stopped = false;
    let timer: ReturnType<typeof setTimeout>;
    const tick = async () => {
      try {
        await fn.current();
      } finally {
        if (!stopped) timer = setTimeout(tick, ms);
      }
    };
    tick();
    return () => {
      stopped = true;
      clearTimeout(timer);
    };
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, deps);
}
