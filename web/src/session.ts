import { createContext, useContext } from 'react';
import type { Session } from './api';

export const SessionContext = createContext<Session | null>(null);

export function useSession(): Session {
  const s = useContext(SessionContext);
  if (!s) throw new Error('no session');
  return s;
}

/** Whether the signed-in user's role allows changes (editor or admin). */
export function canEdit(s: Session): boolean {
  return s.role === 'editor' || s.role === 'admin';
}
