// The org tree of the signed-in user's subtree, cached per session. `position`: a command's,
// so a tree read right after it (a node just added) already has it.
import { reactive } from 'vue'
import { api } from './client'
import { getSession } from './session'

export const org = reactive({ nodes: [], byId: {}, loadedFor: '', loading: null })

export function loadOrg(force = false, position) {
  const s = getSession()
  if (!s) return Promise.resolve([])
  const key = s.account_id + '@' + s.node_id
  if (!force && org.loadedFor === key) return Promise.resolve(org.nodes)
  if (!force && org.loading) return org.loading
  org.loading = api
    .get('/org', { node_id: s.node_id, min_position: position }, { silent: true })
    .then((r) => {
      org.nodes = r.nodes || []
      org.byId = Object.fromEntries(org.nodes.map((n) => [n.id, n]))
      org.loadedFor = key
      return org.nodes
    })
    .catch(() => [])
    .finally(() => (org.loading = null))
  return org.loading
}

export function nodeName(id) {
  const n = org.byId[id]
  return n ? n.name : id || '—'
}

// Short name without the long suffix, e.g. 车站路社区.
export function shortName(id) {
  return nodeName(id).replace(/新时代文明实践(中心|所|站|点)$/, '')
}

export function childrenOf(id) {
  return org.nodes.filter((n) => n.parent_id === id)
}

// Nested tree for el-tree / el-tree-select: [{value,label,level,children}]
export function orgTree() {
  const ids = new Set(org.nodes.map((n) => n.id))
  const make = (n) => {
    const kids = childrenOf(n.id).map(make)
    return { value: n.id, label: n.name, level: n.level, node: n, children: kids.length ? kids : undefined }
  }
  return org.nodes.filter((n) => !n.parent_id || !ids.has(n.parent_id)).map(make)
}

// Path from the subtree root to `id`.
export function pathTo(id) {
  const out = []
  let cur = org.byId[id]
  while (cur) {
    out.unshift(cur)
    cur = cur.parent_id ? org.byId[cur.parent_id] : null
  }
  return out
}
