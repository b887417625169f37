// Team and helper-unit names, cached per session (派单台, 订单详情). All of them, not just the
// user's subtree: an order escalated by the dispatch rules goes to an institute's or the centre's
// team or helper unit, and a station head must still see whom it went to.
import { reactive } from 'vue'
import { api } from './client'
import { getSession } from './session'

export const teams = reactive({ byId: {}, loadedFor: '', loading: null })

export function loadTeams() {
  const s = getSession()
  if (!s) return Promise.resolve()
  const key = s.account_id + '@' + s.node_id
  if (teams.loadedFor === key) return Promise.resolve()
  if (teams.loading) return teams.loading
  teams.loading = api
    .get('/teams', {}, { silent: true })
    .then((r) => {
      teams.byId = Object.fromEntries((r.teams || []).map((t) => [t.id, t]))
      teams.loadedFor = key
    })
    .catch(() => {})
    .finally(() => (teams.loading = null))
  return teams.loading
}

// A team was registered: the next page that needs names reads them again.
export function forgetTeams() {
  teams.loadedFor = ''
}

// A team's name; its id when it is unknown.
export function teamName(id) {
  if (!id) return '—'
  const t = teams.byId[id]
  return t ? t.name : id
}
