import { useCallback, useEffect, useState } from 'react';
import { api } from '../api';

/** A list from the API with a way to read it again after a change. */
export function useList<T>(path: string) {
  const [items, setItems] = useState<T[] | null>(null);
  const [error, setError] = useState<string>();
  const reload = useCallback(() => {
    api<T[]>('GET', path)
      .then((v) => {
        setItems(v);
        setError(undefined);
      })
      .catch((e: Error) => setError(e.message));
  }, [path]);
  useEffect(reload, [reload]);
  return { items, error, reload };
}
