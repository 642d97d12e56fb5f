"""What the service ships: a default subscription for every catalogue event a person should hear
of, and zh-CN and en templates for each. Custom subscriptions and templates (API) come on top;
a custom template for the same (key, channel, language) replaces the shipped one."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Subscription:
    id: str
    event_type: str
    recipient_kind: str           # field | role | team_manager | customer | user | approvers
    recipient_value: str | None   # the payload field, the role or the user id
    channels: tuple[str, ...]
    template: str                 # template key (usually the event type)
    condition: dict | None = None
    critical: bool = False
    default: bool = True
    enabled: bool = True
    extra: dict = field(default_factory=dict)


def _s(event_type, kind, value, channels, template=None, condition=None, critical=False, n=0):
    return Subscription(id=f"default:{event_type}:{value or kind}{':' + str(n) if n else ''}", event_type=event_type,
                        recipient_kind=kind, recipient_value=value, channels=tuple(channels),
                        template=template or event_type, condition=condition, critical=critical)


IE = ("inbox", "email")
DEFAULT_SUBSCRIPTIONS: tuple[Subscription, ...] = (
    _s("lead.assigned", "field", "owner_id", IE),
    _s("lead.duplicate_hit", "field", "owner_id", ("inbox",)),
    _s("lead.recycle_warning", "field", "owner_id", IE),
    _s("lead.recycled", "field", "previous_owner_id", ("inbox",)),
    _s("lead.recycled", "team_manager", None, ("inbox",)),
    _s("approval.requested", "approvers", None, IE),
    _s("approval.decided", "field", "requester_id", IE),
    _s("contract.signed", "field", "owner_id", ("inbox",)),
    _s("contract.expiring", "field", "owner_id", IE),
    _s("contract.renewed", "field", "owner_id", ("inbox",)),
    _s("contract.terminated", "field", "owner_id", IE),
    _s("order.submitted", "role", "ops", IE),
    _s("order.fulfilled", "field", "owner_id", ("inbox",)),
    _s("payment.received", "field", "owner_id", ("inbox",)),
    _s("payment.overdue", "field", "owner_id", IE, condition={"days_overdue": {"lt": 30}}),
    _s("payment.overdue", "role", "finance", IE),  # receivables are finance's to chase
    _s("payment.overdue", "field", "owner_id", ("inbox", "email", "sms"), condition={"days_overdue": {"gte": 30}},
       critical=True, n=30),
    _s("ticket.created", "field", "assignee_id", ("inbox",)),
    _s("ticket.assigned", "field", "assignee_id", IE),
    _s("ticket.resolved", "field", "owner_id", ("inbox",)),
    # the customer's satisfaction survey (the link carries service-desk's one-time token)
    _s("ticket.resolved", "customer", None, ("email", "sms"), template="survey.csat",
       condition={"csat_token": {"present": True}}),
    _s("ticket.sla_warning", "field", "assignee_id", IE),
    _s("ticket.sla_breached", "field", "supervisor_id", ("inbox", "email", "sms"), critical=True),
    _s("ticket.sla_breached", "field", "assignee_id", ("inbox",), critical=True),
    _s("ticket.escalated", "field", "escalated_to", IE),
    _s("csat.submitted", "field", "owner_id", IE, condition={"score": {"lte": 2}}),
    _s("customer.updated", "field", "owner_id", IE, template="customer.churn_risk",
       condition={"churn_risk_raised": {"eq": True}}),
)

# Schedules (not plain event subscriptions): who hears, on which channels.
FOLLOW_UP_CHANNELS = ("inbox", "email")
APPROVAL_REMINDER_CHANNELS = ("inbox", "email")
GREETING_CHANNELS = ("sms", "email")

# Events a webhook or robot may subscribe to besides the catalogue's ("*" = all).
SCHEDULE_KEYS = ("reminder.follow_up", "reminder.approval", "greeting.birthday", "greeting.holiday", "digest",
                 "notice.webhook_disabled")


def _t(zh_subject, zh_body, en_subject, en_body):
    return {"zh-CN": (zh_subject, zh_body), "en": (en_subject, en_body)}


# key -> language -> (subject, body). Channel-independent: email uses subject + body (text and
# HTML), SMS the body, the inbox the subject as title and the body, robots subject + body.
DEFAULT_TEMPLATES: dict[str, dict[str, tuple[str, str]]] = {
    "lead.assigned": _t(
        "新线索：{{ name or company or lead_id }}",
        "您有一条新线索：{{ name or '' }} {{ company or '' }}（来源：{{ source or '未知' }}）。请尽快跟进。",
        "New lead: {{ name or company or lead_id }}",
        "A new lead is yours: {{ name or '' }} {{ company or '' }} (source: {{ source or 'unknown' }}). "
        "Please follow up soon."),
    "lead.duplicate_hit": _t(
        "重复线索提醒：{{ name or company or lead_id }}",
        "有人尝试录入与您的线索 {{ name or company or lead_id }} 重复的线索（匹配：{{ matched_on }}）。",
        "Duplicate of your lead: {{ name or company or lead_id }}",
        "Someone tried to add a lead matching yours, {{ name or company or lead_id }} (matched on {{ matched_on }})."),
    "lead.recycle_warning": _t(
        "线索即将回收：{{ name or company or lead_id }}",
        "线索 {{ name or company or lead_id }} 将于 {{ recycle_at }} 回到公海（规则：{{ rule }}），请及时跟进。",
        "Lead about to return to the pool: {{ name or company or lead_id }}",
        "Lead {{ name or company or lead_id }} goes back to the pool at {{ recycle_at }} (rule: {{ rule }}) "
        "unless you follow up."),
    "lead.recycled": _t(
        "线索已回收：{{ name or company or lead_id }}",
        "线索 {{ name or company or lead_id }} 已回到公海（规则：{{ rule }}）。",
        "Lead returned to the pool: {{ name or company or lead_id }}",
        "Lead {{ name or company or lead_id }} went back to the pool (rule: {{ rule }})."),
    "approval.requested": _t(
        "待审批：{{ subject_type }} {{ subject_id }}",
        "{{ subject_type }} {{ subject_id }} 第 {{ step }} 步等待您审批"
        "{% if amount %}，金额 {{ amount }} {{ currency or '' }}{% endif %}。",
        "Approval needed: {{ subject_type }} {{ subject_id }}",
        "{{ subject_type }} {{ subject_id }}, step {{ step }}, waits for your approval"
        "{% if amount %} (amount {{ amount }} {{ currency or '' }}){% endif %}."),
    "approval.decided": _t(
        "审批结果：{{ subject_type }} {{ subject_id }}",
        "{{ subject_type }} {{ subject_id }} 第 {{ step }} 步审批结果：{{ {'approve': '通过', 'reject': '驳回', "
        "'return': '退回'}[decision] }}{% if comment %}（{{ comment }}）{% endif %}。",
        "Approval decided: {{ subject_type }} {{ subject_id }}",
        "{{ subject_type }} {{ subject_id }}, step {{ step }}: {{ {'approve': 'approved', 'reject': 'rejected', "
        "'return': 'returned'}[decision] }}{% if comment %} ({{ comment }}){% endif %}."),
    "contract.signed": _t(
        "合同已签署：{{ contract_id }}", "合同 {{ contract_id }} 已签署，金额 {{ amount }} {{ currency }}。",
        "Contract signed: {{ contract_id }}", "Contract {{ contract_id }} was signed for {{ amount }} {{ currency }}."),
    "contract.expiring": _t(
        "合同即将到期：{{ contract_id }}", "合同 {{ contract_id }} 将于 {{ end_date }} 到期，请联系客户续约。",
        "Contract expiring: {{ contract_id }}",
        "Contract {{ contract_id }} ends on {{ end_date }}. Talk to the customer about renewal."),
    "contract.renewed": _t(
        "合同已续约：{{ contract_id }}", "合同 {{ contract_id }} 已续约。",
        "Contract renewed: {{ contract_id }}", "Contract {{ contract_id }} was renewed."),
    "contract.terminated": _t(
        "合同已终止：{{ contract_id }}", "合同 {{ contract_id }} 已终止{% if reason %}（{{ reason }}）{% endif %}。",
        "Contract terminated: {{ contract_id }}",
        "Contract {{ contract_id }} was terminated{% if reason %} ({{ reason }}){% endif %}."),
    "order.submitted": _t(
        "新订单待处理：{{ order_id }}", "合同 {{ contract_id }} 的订单 {{ order_id }} 已提交，请处理开通。",
        "New order to fulfil: {{ order_id }}",
        "Order {{ order_id }} of contract {{ contract_id }} was submitted and waits for fulfilment."),
    "order.fulfilled": _t(
        "订单已完成：{{ order_id }}", "订单 {{ order_id }} 已完成开通。",
        "Order fulfilled: {{ order_id }}", "Order {{ order_id }} was fulfilled."),
    "payment.received": _t(
        "已收款：{{ amount }} {{ currency }}", "合同 {{ contract_id }} 收到付款 {{ amount }} {{ currency }}（{{ paid_on }}）。",
        "Payment received: {{ amount }} {{ currency }}",
        "Contract {{ contract_id }} received {{ amount }} {{ currency }} on {{ paid_on }}."),
    "payment.overdue": _t(
        "回款逾期 {{ days_overdue }} 天：合同 {{ contract_id }}",
        "合同 {{ contract_id }} 的应收款 {{ amount_due }} {{ currency }}（到期日 {{ due_date }}）已逾期 "
        "{{ days_overdue }} 天。",
        "Payment {{ days_overdue }} days overdue: contract {{ contract_id }}",
        "{{ amount_due }} {{ currency }} of contract {{ contract_id }} was due on {{ due_date }} and is "
        "{{ days_overdue }} days overdue."),
    "ticket.created": _t(
        "新工单：{{ subject or ticket_id }}", "新的{{ type }}工单 {{ ticket_id }}（优先级 {{ priority }}）：{{ subject or '' }}",
        "New ticket: {{ subject or ticket_id }}",
        "New {{ type }} ticket {{ ticket_id }} (priority {{ priority }}): {{ subject or '' }}"),
    "ticket.assigned": _t(
        "工单已分配给您：{{ subject or ticket_id }}", "工单 {{ ticket_id }}（{{ type }}，优先级 {{ priority }}）已分配给您。",
        "Ticket assigned to you: {{ subject or ticket_id }}",
        "Ticket {{ ticket_id }} ({{ type }}, priority {{ priority }}) is now yours."),
    "ticket.resolved": _t(
        "客户工单已解决：{{ subject or ticket_id }}", "您客户的工单 {{ ticket_id }} 已解决。",
        "Customer ticket resolved: {{ subject or ticket_id }}", "Your customer's ticket {{ ticket_id }} was resolved."),
    "ticket.sla_warning": _t(
        "SLA 即将超时：工单 {{ ticket_id }}", "工单 {{ ticket_id }} 的 {{ target }} 将于 {{ due_at }} 超时。",
        "SLA at risk: ticket {{ ticket_id }}", "The {{ target }} of ticket {{ ticket_id }} is due at {{ due_at }}."),
    "ticket.sla_breached": _t(
        "SLA 已超时：工单 {{ ticket_id }}", "工单 {{ ticket_id }}（优先级 {{ priority }}）的 {{ target }} 已于 {{ due_at }} 超时。",
        "SLA breached: ticket {{ ticket_id }}",
        "The {{ target }} of ticket {{ ticket_id }} (priority {{ priority }}) was due at {{ due_at }} and is breached."),
    "ticket.escalated": _t(
        "工单已升级：{{ ticket_id }}", "工单 {{ ticket_id }} 因 {{ target }} 超时升级给您处理。",
        "Ticket escalated to you: {{ ticket_id }}", "Ticket {{ ticket_id }} was escalated to you ({{ target }})."),
    "csat.submitted": _t(
        "客户满意度偏低：{{ score }} 分", "工单 {{ ticket_id }} 的客户评分为 {{ score }} 分{% if comment %}：{{ comment }}{% endif %}。",
        "Low satisfaction score: {{ score }}",
        "The customer rated ticket {{ ticket_id }} {{ score }}/5{% if comment %}: {{ comment }}{% endif %}."),
    "lead.created": _t(
        "公海新线索：{{ name or company or lead_id }}", "新线索进入公海：{{ name or '' }} {{ company or '' }}（{{ city or '' }}）。",
        "New lead in the pool: {{ name or company or lead_id }}",
        "A new lead is in the pool: {{ name or '' }} {{ company or '' }} ({{ city or '' }})."),
    "customer.churn_risk": _t(
        "客户流失风险：{{ name }}", "客户 {{ name }} 已被标记为流失风险{% if churn_reason %}（{{ churn_reason }}）{% endif %}，请尽快联系。",
        "Churn risk: {{ name }}",
        "Customer {{ name }} was flagged as a churn risk{% if churn_reason %} ({{ churn_reason }}){% endif %}. "
        "Please get in touch soon."),
    "survey.csat": _t(
        "您的问题已解决，请为我们的服务评分",
        "您的工单 {{ ticket_id }}（{{ subject or '' }}）已解决。请为本次服务打分（1-5 分）：{{ csat_url }}",
        "Your request is resolved: how did we do?",
        "Your ticket {{ ticket_id }} ({{ subject or '' }}) is resolved. Please rate our service (1-5): {{ csat_url }}"),
    "reminder.follow_up": _t(
        "跟进提醒：{{ name or company or lead_id }}", "按计划现在该跟进线索 {{ name or company or lead_id }} 了。",
        "Follow-up due: {{ name or company or lead_id }}", "It is time for the planned follow-up of lead "
        "{{ name or company or lead_id }}."),
    "reminder.approval": _t(
        "审批提醒：{{ subject_type }} {{ subject_id }}", "{{ subject_type }} {{ subject_id }} 第 {{ step }} 步已等待您审批超过一个工作日。",
        "Reminder: approval waiting, {{ subject_type }} {{ subject_id }}",
        "{{ subject_type }} {{ subject_id }}, step {{ step }}, has waited for your approval for more than a business day."),
    "greeting.birthday": _t(
        "生日快乐", "{{ customer_name }}，祝您生日快乐，万事如意！",
        "Happy birthday", "Happy birthday, {{ customer_name }}! Best wishes from all of us."),
    "greeting.holiday": _t(
        "{{ holiday_name }}快乐", "{{ customer_name }}，祝您{{ holiday_name }}快乐，阖家幸福！",
        "Happy {{ holiday_name }}", "{{ customer_name }}, warm wishes for {{ holiday_name }} from all of us."),
    "digest": _t(
        "消息摘要（{{ count }} 条）", "{% for item in items %}- {{ item.subject }}\n{% endfor %}",
        "Digest ({{ count }} messages)", "{% for item in items %}- {{ item.subject }}\n{% endfor %}"),
    "notice.webhook_disabled": _t(
        "Webhook 已停用：{{ url }}", "Webhook {{ webhook_id }}（{{ url }}）多次投递失败，已停用。最后错误：{{ error }}",
        "Webhook disabled: {{ url }}",
        "Webhook {{ webhook_id }} ({{ url }}) was disabled after repeated failures. Last error: {{ error }}"),
}

# Template keys that may be subscribed to by webhooks/robots or have custom templates.
TEMPLATE_KEYS = tuple(sorted(set(DEFAULT_TEMPLATES) | set(SCHEDULE_KEYS)))
