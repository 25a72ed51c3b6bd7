// 编码员工作台: plain JS against the same service's /v1 API; no external scripts (intranets are offline).
"use strict";

const FLAGS_ZH = {
  SEX_INVALID: "性别不是本方案的编码（1 男，2 女）",
  AGE_MISSING: "缺少年龄（岁）",
  AGE_OUT_OF_RANGE: "年龄超出范围",
  AGE_DAYS_MISSING: "0 岁患者缺少日龄",
  AGE_DAYS_OUT_OF_RANGE: "日龄为负数",
  WEIGHT_MISSING: "新生儿缺少出生体重",
  WEIGHT_OUT_OF_RANGE: "出生体重为负数",
  NO_DIAGNOSIS: "缺少主要诊断",
  UNKNOWN_PDX: "主要诊断不在本方案的编码字典中",
  UNKNOWN_SDX: "有其他诊断不在本方案的编码字典中",
  UNKNOWN_PX: "有手术操作不在本方案的编码字典中",
  EMPTY_CODE: "诊断/手术列表中有空编码（已忽略）",
  BAD_NUMBER: "有数值字段不是整数（按缺失处理）",
  LOS_INVALID: "住院天数缺失或为负数（本方案需要住院天数）",
};
const STATUS_CLASS = s => "status-" + s;
const SETTLE_ZH = {settled: "", returned: "退回医院修改（校验不通过）", unknown_status: "分组状态未知",
  no_cost: "无费用，无法计算", no_los: "无住院天数，无法计算", no_weight: "该组无权重", no_patient_share: "缺少个人负担"};
const $ = id => document.getElementById(id);
let rulesets = [];

function headers(extra) {
  const h = Object.assign({}, extra || {});
  const t = sessionStorage.getItem("drg-token");
  if (t) h["Authorization"] = "Bearer " + t;
  return h;
}

async function api(path, options) {
  const opts = Object.assign({}, options || {});
  opts.headers = headers(opts.headers);
  const r = await fetch(path, opts);
  let body = null;
  try { body = await r.json(); } catch (e) { body = null; }
  if (r.status === 401) {
    $("token-row").hidden = false;
    throw new Error("需要访问令牌：请在下方填写后重试");
  }
  if (!r.ok) throw new Error((body && body.error) ? body.error : ("服务返回 " + r.status));
  return body;
}

function splitCodes(text) {
  return text.split(/[|,，;；\s]+/).map(s => s.trim()).filter(s => s.length > 0);
}

function esc(s) {
  return String(s == null ? "" : s).replace(/[&<>"']/g, c => ({"&": "&amp;", "<": "&lt;", ">": "&gt;", "\"": "&quot;", "'": "&#39;"}[c]));
}

function yuan(fen) {
  if (fen == null) return "—";
  return (fen / 100).toLocaleString("zh-CN", {minimumFractionDigits: 2, maximumFractionDigits: 2}) + " 元";
}

// ---------------------------------------------------------------- code autocomplete
const nameCache = {};

function setupCodes(kind) {
  const box = $(kind), list = $(kind + "-suggest");
  let timer = null, active = -1, hits = [];
  function lastToken() {
    const m = box.value.slice(0, box.selectionStart).match(/[^|,，;；\s]*$/);
    return m ? m[0] : "";
  }
  function close() { list.hidden = true; active = -1; }
  function pick(i) {
    const h = hits[i];
    if (!h) return;
    const pos = box.selectionStart, tok = lastToken();
    const before = box.value.slice(0, pos - tok.length), after = box.value.slice(pos);
    const sep = after.length === 0 ? "|" : "";
    box.value = before + h.code + sep + after;
    nameCache[kind + ":" + h.code] = h.name;
    const at = (before + h.code + sep).length;
    box.setSelectionRange(at, at);
    close();
    renderChips(kind);
    box.focus();
  }
  box.addEventListener("input", () => {
    clearTimeout(timer);
    const q = lastToken();
    if (q.length < 1) { close(); renderChips(kind); return; }
    timer = setTimeout(async () => {
      try {
        hits = await api("/v1/codes?" + new URLSearchParams({q: q, kind: kind, ruleset: $("ruleset").value, limit: 15}));
      } catch (e) { hits = []; }
      list.innerHTML = hits.map((h, i) => `<li data-i="${i}"><code>${esc(h.code)}</code>${esc(h.name)}</li>`).join("");
      list.hidden = hits.length === 0;
      active = -1;
    }, 120);
    renderChips(kind);
  });
  box.addEventListener("keydown", ev => {
    if (list.hidden) return;
    const items = list.querySelectorAll("li");
    if (ev.key === "ArrowDown" || ev.key === "ArrowUp") {
      ev.preventDefault();
      active = (active + (ev.key === "ArrowDown" ? 1 : items.length - 1)) % items.length;
      items.forEach((li, i) => li.classList.toggle("active", i === active));
    } else if (ev.key === "Enter" && active >= 0) {
      ev.preventDefault();
      pick(active);
    } else if (ev.key === "Escape") {
      close();
    }
  });
  list.addEventListener("mousedown", ev => {
    const li = ev.target.closest("li");
    if (li) { ev.preventDefault(); pick(Number(li.dataset.i)); }
  });
  box.addEventListener("blur", () => setTimeout(close, 150));
  box.addEventListener("change", () => renderChips(kind));
}

async function codeName(kind, code) {
  const key = kind + ":" + code;
  if (!(key in nameCache)) {
    try {
      const hits = await api("/v1/codes?" + new URLSearchParams({q: code, kind: kind, ruleset: $("ruleset").value, limit: 1}));
      nameCache[key] = hits.length && hits[0].code === code ? hits[0].name : null;
    } catch (e) { return ""; }
  }
  return nameCache[key];
}

async function renderChips(kind) {
  const codes = splitCodes($(kind).value);
  const names = await Promise.all(codes.map(c => codeName(kind, c)));
  $(kind + "-chips").innerHTML = codes.map((c, i) => {
    const cls = (i === 0 ? "first " : "") + (names[i] == null ? "unknown" : "");
    const label = names[i] == null ? "（本方案字典中没有）" : names[i];
    return `<li class="${cls}"><code>${esc(c)}</code>${esc(label)}</li>`;
  }).join("");
}

// ---------------------------------------------------------------- grouping
function readCase() {
  const c = {dx: splitCodes($("dx").value), px: splitCodes($("px").value)};
  for (const k of ["sex", "age", "age_days", "birth_weight", "los", "discharge", "dept"]) {
    const v = $(k).value.trim();
    if (v !== "") c[k] = v;
  }
  const cost = $("cost").value.trim();
  if (cost !== "") {
    const n = Number(cost);
    if (!isFinite(n) || n < 0) throw new Error("总费用应为非负数字（元）");
    c.cost = n;
  }
  return c;
}

function severityRow(r) {
  const s = r.explain && r.explain.severity;
  if (!s) return "—";
  if (!s.decided_by.length) return "无（未见 CC/MCC 次要诊断）";
  const why = s.decided_by.map(d => `<code>${esc(d.code)}</code> ${esc(d.name)}`).join("；");
  const ex = s.excluded.length ? `<br><small>被主要诊断排除：${s.excluded.map(d => esc(d.code + " " + d.name)).join("；")}</small>` : "";
  return `${why}（${esc(s.cc_level)}）${ex}`;
}

function resultCard(r, rs) {
  const p = r.payment;
  const warn = r.reasons.map(x => `<li>${esc(FLAGS_ZH[x.flag] || x.message)}</li>`).join("");
  const pay = !p ? `<tr><th>权重 / 支付</th><td class="rw">未配置权重（启动时加 --weights / --pack）</td></tr>` : `
    <tr><th>相对权重 RW</th><td class="rw">${p.rw == null ? "该组无权重" : p.rw}</td></tr>
    ${p.pack ? `<tr><th>支付标准</th><td class="standard">${yuan(p.payment_standard_fen)}</td></tr>
    <tr><th>病例类型</th><td class="case-type">${esc(p.case_type_name || "—")}</td></tr>
    <tr><th>预计支付</th><td class="payment">${yuan(p.expected_payment_fen)}${SETTLE_ZH[p.settle_status] ? `（${SETTLE_ZH[p.settle_status]}）` : ""}${p.cost_assumed ? "<br><small>未填总费用：按该组平均费用估算</small>" : ""}${p.los_assumed ? "<br><small>未填住院天数：按该组平均住院日估算</small>" : ""}${p.illustrative ? "<br><small>示例参数，仅供演示</small>" : ""}</td></tr>` : ""}`;
  return `<div class="result" data-ruleset="${esc(r.ruleset)}">
    <h3>${esc(rs ? rs.title : r.ruleset)}</h3>
    <table>
      <tr><th>状态</th><td class="status ${STATUS_CLASS(r.status)}">${esc(r.status_name)}</td></tr>
      <tr><th>DRG</th><td><span class="drg">${esc(r.drg)}</span> <span class="drg-name">${esc(r.drg_name)}</span></td></tr>
      <tr><th>ADRG</th><td class="adrg">${esc(r.adrg)} ${esc(r.adrg_name)}</td></tr>
      <tr><th>MDC</th><td class="mdc">${esc(r.mdc)} ${esc(r.mdc_name)}</td></tr>
      <tr><th>CC/MCC 级别</th><td class="cc">${esc(r.cc_level == null ? "—" : r.cc_level)}</td></tr>
      <tr><th>决定 CC/MCC 的诊断</th><td class="decided">${severityRow(r)}</td></tr>
      ${pay}
      <tr><th>数据质量提示</th><td><ul class="warnings">${warn || "<li class=ok>无</li>"}</ul></td></tr>
    </table>
    <details open><summary>分组路径（为什么入这个组）</summary><pre class="explain">${esc(r.explain ? r.explain.text : "")}</pre></details>
  </div>`;
}

function diffText(a, b) {
  const same = a.drg === b.drg;
  const pa = a.payment, pb = b.payment;
  let money = "";
  if (pa && pb && pa.rw != null && pb.rw != null) money = `；权重 ${pa.rw} → ${pb.rw}`;
  if (pa && pb && pa.expected_payment_fen != null && pb.expected_payment_fen != null) {
    money += `；预计支付 ${yuan(pa.expected_payment_fen)} → ${yuan(pb.expected_payment_fen)}`;
  }
  const head = same ? "两个方案分组相同" : "分组不同";
  return `${head}：${esc(a.ruleset)} <b>${esc(a.drg)}</b> ${esc(a.drg_name)} → ${esc(b.ruleset)} <b>${esc(b.drg)}</b> ${esc(b.drg_name)}（CC/MCC ${esc(a.cc_level)} → ${esc(b.cc_level)}）${money}`;
}

async function group(ev) {
  if (ev) ev.preventDefault();
  $("error").hidden = true;
  const tok = $("token").value.trim();
  if (tok) sessionStorage.setItem("drg-token", tok);
  let c;
  try {
    if (!rulesets.length) await loadRulesets();  // after a token was entered
    c = readCase();
  } catch (e) { showError(e.message); return; }
  const names = [$("ruleset").value];
  if ($("compare-on").checked && $("compare").value && $("compare").value !== names[0]) names.push($("compare").value);
  try {
    const results = await Promise.all(names.map(n => api("/v1/group?" + new URLSearchParams({ruleset: n, explain: 1}), {
      method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(c)})));
    $("results").innerHTML = results.map((r, i) => resultCard(r, rulesets.find(x => x.name === names[i]))).join("");
    const d = $("diff");
    if (results.length === 2) {
      d.innerHTML = diffText(results[0], results[1]);
      d.className = results[0].drg === results[1].drg ? "same" : "changed";
      d.hidden = false;
    } else {
      d.hidden = true;
    }
  } catch (e) {
    showError(e.message);
  }
}

function showError(msg) {
  $("error").textContent = "错误：" + msg;
  $("error").hidden = false;
}

async function start() {
  setupCodes("dx");
  setupCodes("px");
  $("form").addEventListener("submit", group);
  $("clear").addEventListener("click", () => {
    for (const k of ["age", "age_days", "birth_weight", "los", "discharge", "dept", "cost", "dx", "px"]) $(k).value = "";
    renderChips("dx"); renderChips("px");
    $("results").innerHTML = ""; $("diff").hidden = true;
  });
  try {
    await loadRulesets();
  } catch (e) {
    showError(e.message);
  }
}

async function loadRulesets() {
  rulesets = await api("/v1/rulesets");
  const opts = rulesets.map(r => `<option value="${esc(r.name)}">${esc(r.name)}（${esc(r.version)}）</option>`).join("");
  $("ruleset").innerHTML = opts;
  $("compare").innerHTML = opts;
  if (rulesets.length > 1) $("compare").value = rulesets[1].name;
  else { $("compare-on").checked = false; $("compare-on").disabled = true; }
  const h = await api("/healthz");
  $("service").textContent = `drg-grouper ${h.version} · 方案：${h.rulesets.join("、")}`;
}

document.addEventListener("DOMContentLoaded", start);
