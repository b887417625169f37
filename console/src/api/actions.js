// Order commands shared by the board and the detail page. Each returns true on success.
import { ElMessage, ElMessageBox } from 'element-plus'
import 'element-plus/es/components/message-box/style/css'
import { api } from './client'
import { deadlineLabel } from '../labels'

export async function triageAccept(order) {
  try {
    await api.post(`/orders/${order.order_id}/triage`, { accept: true, reason: '' })
    ElMessage.success('已审核通过，待派单')
    return true
  } catch {
    return false
  }
}

async function askReason(title, placeholder) {
  try {
    const { value } = await ElMessageBox.prompt(placeholder, title, {
      confirmButtonText: '确定',
      cancelButtonText: '取消',
      inputType: 'textarea',
      inputPlaceholder: '请填写原因（不超过 200 字）',
      inputValidator: (v) => (!v || !v.trim() ? '请填写原因' : v.length > 200 ? '原因不能超过 200 字' : true),
      customClass: 'reason-box',
    })
    return value.trim()
  } catch {
    return null
  }
}

export async function triageReject(order) {
  const reason = await askReason('驳回订单', '驳回后将通知居民，请说明原因：')
  if (reason === null) return false
  try {
    await api.post(`/orders/${order.order_id}/triage`, { accept: false, reason })
    ElMessage.success('已驳回')
    return true
  } catch {
    return false
  }
}

export async function dispatchTo(order, teamId, reason) {
  const again = REDISPATCHABLE.includes(order.status)
  try {
    await api.post(`/orders/${order.order_id}/dispatch`, { team_id: teamId, reason })
    ElMessage.success(again ? '已改派' : '已派单')
    return true
  } catch {
    return false
  }
}

export async function decideExtension(order, deadline, approve) {
  let reason = ''
  if (!approve) {
    const r = await askReason('驳回延期', `驳回「${deadlineLabel(deadline)}」的延期申请，请说明原因：`)
    if (r === null) return false
    reason = r
  }
  try {
    await api.post(`/orders/${order.order_id}/extension/decision`, { deadline: deadline.name, approve, reason })
    ElMessage.success(approve ? '已同意延期' : '已驳回延期')
    return true
  } catch {
    return false
  }
}

export async function cancelOrder(order) {
  const reason = await askReason('取消订单', '确定取消该订单？请说明原因：')
  if (reason === null) return false
  try {
    await api.post(`/orders/${order.order_id}/cancel`, { reason })
    ElMessage.success('订单已取消')
    return true
  } catch {
    return false
  }
}

export const TRIAGEABLE = ['placed']
export const DISPATCHABLE = ['triaged', 'declined']
// Dispatched but not accepted yet: may be sent to another team (改派).
export const REDISPATCHABLE = ['dispatched']
export const CANCELLABLE = ['placed', 'triaged', 'dispatched', 'declined']
