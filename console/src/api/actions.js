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

export async function mergeOrder(order) {
  let into
  try {
    const { value } = await ElMessageBox.prompt('把本单作为重复订单并入更早的同一问题订单，本单将以“已合并”关闭，居民可在原订单中跟进并评价。', '合并订单', {
      confirmButtonText: '合并',
      cancelButtonText: '取消',
      inputPlaceholder: '更早订单的编号',
      inputValidator: (v) => (!v || !v.trim() ? '请填写要并入的订单编号' : v.trim() === order.order_id ? '不能并入本单自身' : true),
      customClass: 'merge-box',
    })
    into = value.trim()
  } catch {
    return false
  }
  try {
    await api.post(`/orders/${order.order_id}/merge`, { into, reason: '同一问题，合并办理' })
    ElMessage.success('已合并')
    return true
  } catch {
    return false
  }
}

export async function reworkTo(order, teamId, reason) {
  try {
    await api.post(`/orders/${order.order_id}/rework`, { team_id: teamId, reason })
    ElMessage.success('已安排返工')
    return true
  } catch {
    return false
  }
}

export async function followUp(order) {
  const note = await askReason('回访', '请记录回访情况与处理结果：')
  if (note === null) return false
  try {
    await api.post(`/orders/${order.order_id}/follow-up`, { note })
    ElMessage.success('已记录回访')
    return true
  } catch {
    return false
  }
}

export async function completeActivity(order) {
  const note = await askReason('办结活动', '请填写活动完成情况：')
  if (note === null) return false
  try {
    await api.post(`/orders/${order.order_id}/complete`, { note })
    ElMessage.success('活动已办结')
    return true
  } catch {
    return false
  }
}

export async function reviewActivity(order) {
  try {
    await api.post(`/orders/${order.order_id}/review`, { rating: 5, comment: '活动组织有序' })
    ElMessage.success('已评价')
    return true
  } catch {
    return false
  }
}

// A review of at most this many stars may be reworked (返工) or followed up (回访).
export const POOR_RATING = 2
export const MERGEABLE = ['placed', 'triaged']

export const TRIAGEABLE = ['placed']
export const DISPATCHABLE = ['triaged', 'declined']
// Dispatched but not accepted yet: may be sent to another team (改派).
export const REDISPATCHABLE = ['dispatched']
export const CANCELLABLE = ['placed', 'triaged', 'dispatched', 'declined']
