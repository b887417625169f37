import { createRouter, createWebHashHistory } from 'vue-router'
import { getSession, homeFor, HEADS, STAFF } from './api/session'
import Layout from './layout/MainLayout.vue'

const ALL = [...STAFF, 'auditor']
const AUDIT = ['auditor', 'centre_admin', 'institute_admin', 'station_head']

const routes = [
  { path: '/login', component: () => import('./pages/Login.vue'), meta: { public: true, title: '登录' } },
  {
    path: '/command',
    component: () => import('./pages/Command.vue'),
    meta: { title: '指挥中心', roles: ALL },
  },
  {
    path: '/',
    component: Layout,
    children: [
      { path: '', redirect: () => homeFor((getSession() || {}).role) },
      { path: 'board', component: () => import('./pages/Board.vue'), meta: { title: '派单台', roles: HEADS, menu: true, icon: 'Tickets' } },
      { path: 'dashboard', component: () => import('./pages/Dashboard.vue'), meta: { title: '数据看板', roles: ALL, menu: true, icon: 'DataLine' } },
      { path: 'command-link', redirect: '/command', meta: { title: '指挥中心', roles: ALL, menu: true, icon: 'Monitor', href: '/command' } },
      { path: 'audit', component: () => import('./pages/Audit.vue'), meta: { title: '审计', roles: AUDIT, menu: true, icon: 'Search' } },
      { path: 'ledger', component: () => import('./pages/Ledger.vue'), meta: { title: '志愿积分', roles: AUDIT, menu: true, icon: 'Medal' } },
      { path: 'org', component: () => import('./pages/Org.vue'), meta: { title: '组织管理', roles: HEADS, menu: true, icon: 'OfficeBuilding' } },
      { path: 'orders/:id', component: () => import('./pages/OrderDetail.vue'), meta: { title: '订单详情', roles: ALL } },
      { path: ':rest(.*)*', component: () => import('./pages/NotFound.vue'), meta: { title: '页面不存在' } },
    ],
  },
]

const router = createRouter({ history: createWebHashHistory(), routes })

router.beforeEach((to) => {
  const s = getSession()
  if (to.meta.public) return true
  if (!s) return { path: '/login', query: to.fullPath !== '/' ? { redirect: to.fullPath } : {} }
  if (to.meta.roles && !to.meta.roles.includes(s.role)) return homeFor(s.role) === to.path ? '/login' : homeFor(s.role)
  return true
})

router.afterEach((to) => {
  document.title = (to.meta.title ? to.meta.title + ' - ' : '') + '点单 · 新时代文明实践'
})

export default router
