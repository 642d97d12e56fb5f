// Chinese and English, switchable at any time; the choice is kept per browser.
const messages = { "zh-CN": {}, en: {} };
const listeners = new Set();
export const LANGS = [["zh-CN", "中文"], ["en", "English"]];

function initial() {
  const saved = localStorage.getItem("crm.lang");
  if (saved && messages[saved]) return saved;
  return (navigator.language || "").toLowerCase().startsWith("zh") ? "zh-CN" : "en";
}

let current = initial();
document.documentElement.lang = current;

export function lang() { return current; }

export function setLang(l) {
  if (!messages[l] || l === current) return;
  current = l;
  localStorage.setItem("crm.lang", l);
  document.documentElement.lang = l;
  for (const fn of listeners) fn(l);
}

export function onLangChange(fn) { listeners.add(fn); return () => listeners.delete(fn); }

// addMessages({ "zh-CN": {...}, en: {...} })
export function addMessages(dict) {
  for (const [l, m] of Object.entries(dict)) Object.assign(messages[l], m);
}

// t("key", { n: 3 }) -> the message with {n} filled in; an unknown key shows itself (visible in review)
export function t(key, vars) {
  let s = messages[current][key] ?? messages.en[key] ?? key;
  if (vars) for (const [k, v] of Object.entries(vars)) s = s.split(`{${k}}`).join(String(v));
  return s;
}

const locale = () => (current === "zh-CN" ? "zh-CN" : "en-GB");

export function money(amount, currency) {
  if (amount === null || amount === undefined || amount === "") return "—";
  const n = Number(amount);
  try {
    return new Intl.NumberFormat(locale(), { style: "currency", currency: currency || "CNY",
                                             currencyDisplay: "code" }).format(n);
  } catch { return `${n.toFixed(2)} ${currency || ""}`.trim(); }
}

export function num(n, digits = 0) {
  if (n === null || n === undefined) return "—";
  return new Intl.NumberFormat(locale(), { maximumFractionDigits: digits, minimumFractionDigits: digits }).format(Number(n));
}

export function pct(x, digits = 0) {
  if (x === null || x === undefined) return "—";
  return new Intl.NumberFormat(locale(), { style: "percent", maximumFractionDigits: digits }).format(Number(x));
}

export function date(iso) {
  if (!iso) return "—";
  const d = new Date(iso.length === 10 ? `${iso}T00:00:00` : iso);
  return new Intl.DateTimeFormat(locale(), { year: "numeric", month: "2-digit", day: "2-digit" }).format(d);
}

export function dateTime(iso) {
  if (!iso) return "—";
  return new Intl.DateTimeFormat(locale(), { year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit",
                                             minute: "2-digit" }).format(new Date(iso));
}

// 90 -> "1h 30m" / "1小时30分"
export function duration(minutes) {
  const neg = minutes < 0;
  let m = Math.abs(Math.round(minutes));
  const d = Math.floor(m / 1440); m -= d * 1440;
  const h = Math.floor(m / 60); m -= h * 60;
  const zh = current === "zh-CN";
  const parts = [];
  if (d) parts.push(zh ? `${d}天` : `${d}d`);
  if (h) parts.push(zh ? `${h}小时` : `${h}h`);
  if (!d) parts.push(zh ? `${m}分` : `${m}m`);
  return (neg ? "-" : "") + parts.join(zh ? "" : " ");
}

addMessages({
  "zh-CN": {
    "app.skip": "跳到主要内容", "app.language": "语言", "app.logout": "退出", "app.loading": "加载中…",
    "app.empty": "暂无数据", "app.retry": "重试", "app.saved": "已保存", "app.error": "出错了",
    "app.navigation": "主导航", "app.consoles": "部门控制台", "app.user": "当前用户",
    "app.forbidden": "您的角色无权查看此内容。", "app.fieldErrors": "请修正以下字段：", "app.save": "保存",
    "app.cancel": "取消", "app.open": "打开", "app.actions": "操作", "app.all": "全部", "app.refresh": "刷新",
    "login.title": "登录", "login.dev": "开发环境：选择一个用户登录（开发令牌）。",
    "login.as": "以 {name} 登录", "login.oidc": "通过身份提供方登录", "login.expired": "登录已过期，请重新登录。",
    "login.failed": "登录失败：{msg}", "login.noRole": "您的角色不能使用此控制台。",
    "chart.table": "数据表", "sla.breached": "已超时", "sla.soon": "即将超时", "sla.ok": "时间充足", "chart.figure": "图表",
    "role.admin": "管理员", "role.sales_rep": "销售代表", "role.sales_manager": "销售经理",
    "role.general_manager": "总经理", "role.finance": "财务", "role.ops": "后台运营",
    "role.service_agent": "客服专员", "role.service_supervisor": "客服主管", "role.service": "服务账号",
    "status.new": "新", "status.contacted": "已联系", "status.qualified": "已确认", "status.pooled": "公海中", "status.converted": "已转化", "status.disqualified": "无效", "status.won": "赢单", "status.draft": "草稿", "status.submitted": "已提交", "status.pending": "待处理", "status.pending_approval": "审批中", "status.approved": "已批准", "status.rejected": "已拒绝", "status.returned": "已退回", "status.withdrawn": "已撤回", "status.superseded": "已替代", "status.signed": "已签署", "status.active": "生效中", "status.expiring": "即将到期", "status.expired": "已到期", "status.renewed": "已续签", "status.terminated": "已终止", "status.in_progress": "处理中", "status.fulfilled": "已完成", "status.open": "处理中", "status.resolved": "已解决", "status.closed": "已关闭",
  },
  en: {
    "app.skip": "Skip to main content", "app.language": "Language", "app.logout": "Log out", "app.loading": "Loading…",
    "app.empty": "Nothing here", "app.retry": "Retry", "app.saved": "Saved", "app.error": "Something went wrong",
    "app.navigation": "Main navigation", "app.consoles": "Department consoles", "app.user": "Signed in as",
    "app.forbidden": "Your role may not see this.", "app.fieldErrors": "Please correct these fields:", "app.save": "Save",
    "app.cancel": "Cancel", "app.open": "Open", "app.actions": "Actions", "app.all": "All", "app.refresh": "Refresh",
    "login.title": "Log in", "login.dev": "Development: pick a user to log in as (development token).",
    "login.as": "Log in as {name}", "login.oidc": "Log in with the identity provider",
    "login.expired": "Your session has expired; please log in again.", "login.failed": "Login failed: {msg}",
    "login.noRole": "Your roles cannot use this console.",
    "chart.table": "Data table", "sla.breached": "breached", "sla.soon": "due soon", "sla.ok": "on time", "chart.figure": "Chart",
    "role.admin": "Admin", "role.sales_rep": "Sales rep", "role.sales_manager": "Sales manager",
    "role.general_manager": "General manager", "role.finance": "Finance", "role.ops": "Back office",
    "role.service_agent": "Service agent", "role.service_supervisor": "Service supervisor", "role.service": "Service account",
    "status.new": "new", "status.contacted": "contacted", "status.qualified": "qualified", "status.pooled": "in the pool", "status.converted": "converted", "status.disqualified": "disqualified", "status.won": "won", "status.draft": "draft", "status.submitted": "submitted", "status.pending": "pending", "status.pending_approval": "awaiting approval", "status.approved": "approved", "status.rejected": "rejected", "status.returned": "returned", "status.withdrawn": "withdrawn", "status.superseded": "superseded", "status.signed": "signed", "status.active": "active", "status.expiring": "expiring", "status.expired": "expired", "status.renewed": "renewed", "status.terminated": "terminated", "status.in_progress": "in progress", "status.fulfilled": "fulfilled", "status.open": "open", "status.resolved": "resolved", "status.closed": "closed",
  },
});
