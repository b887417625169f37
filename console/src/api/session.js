// Session kept in sessionStorage (per browser tab). Read on every request so
// that a changed/garbled token is noticed immediately.
import { reactive } from 'vue'

const KEY = 'diandan.session'

export const auth = reactive({
  session: load(),
  // Re-login dialog state (shown over the current page when the session is gone).
  reloginVisible: false,
})

function load() {
  try {
    const raw = sessionStorage.getItem(KEY)
    return raw ? JSON.parse(raw) : null
  } catch {
    return null
  }
}

export function getSession() {
  const s = load()
  auth.session = s
  return s
}

export function setSession(s) {
  if (s) sessionStorage.setItem(KEY, JSON.stringify(s))
  else sessionStorage.removeItem(KEY)
  auth.session = s
}

export const ROLE_LABELS = {
  station_head: '站长',
  institute_admin: '实践所管理员',
  centre_admin: '中心管理员',
  auditor: '审计员',
  team_leader: '队长',
  volunteer: '志愿者',
  resident: '居民',
  system: '系统',
}

export const HEADS = ['station_head', 'institute_admin', 'centre_admin']
export const STAFF = [...HEADS, 'team_leader']

export function homeFor(role) {
  if (role === 'auditor') return '/audit'
  if (HEADS.includes(role)) return '/board'
  return '/dashboard'
}

export function canAct() {
  const s = auth.session
  return !!s && HEADS.includes(s.role)
}
