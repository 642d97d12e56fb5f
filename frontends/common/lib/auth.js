// Who is logged in. Development: a user picker that asks the gateway for a development token.
// Production: the identity provider's login (OIDC authorization code + PKCE); the gateway's
// /app/config.json says which.
const KEY = "crm.token";
const listeners = new Set();

function b64urlDecode(s) {
  s = s.replace(/-/g, "+").replace(/_/g, "/");
  while (s.length % 4) s += "=";
  return new TextDecoder().decode(Uint8Array.from(atob(s), (c) => c.charCodeAt(0)));
}

function b64url(bytes) {
  return btoa(String.fromCharCode(...new Uint8Array(bytes))).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

export function claimsOf(token) {
  try { return JSON.parse(b64urlDecode(token.split(".")[1])); } catch { return null; }
}

export function getToken() {
  const t = localStorage.getItem(KEY);
  if (!t) return null;
  const c = claimsOf(t);
  if (!c || (c.exp && c.exp * 1000 < Date.now())) { localStorage.removeItem(KEY); return null; }
  return t;
}

export function currentUser() {
  const t = getToken();
  const c = t && claimsOf(t);
  if (!c) return null;
  return { id: c.sub, name: c.name || c.preferred_username || c.sub, roles: c.roles || [], team: c.team || null,
           lang: c.lang || null };
}

export function onAuthChange(fn) { listeners.add(fn); return () => listeners.delete(fn); }
function changed() { for (const fn of listeners) fn(currentUser()); }

export function setToken(token) { localStorage.setItem(KEY, token); changed(); }

export function logout({ expired = false } = {}) {
  if (!localStorage.getItem(KEY)) return;
  localStorage.removeItem(KEY);
  sessionStorage.setItem("crm.logout", expired ? "expired" : "manual");
  changed();
}

let configPromise = null;
export function loadConfig() {
  if (!configPromise) {
    const root = location.pathname.slice(0, location.pathname.indexOf("/app/"));
    configPromise = fetch(`${root}/app/config.json`, { cache: "no-store" }).then((r) => {
      if (!r.ok) throw new Error(`config.json: HTTP ${r.status}`);
      return r.json();
    });
  }
  return configPromise;
}

export async function devLogin(user) {
  const root = location.pathname.slice(0, location.pathname.indexOf("/app/"));
  const res = await fetch(`${root}/auth/dev-token`, {
    method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ user: user.id, name: user.name, roles: user.roles, team: user.team || null,
                           lang: user.lang || "zh-CN" }),
  });
  const body = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error(body.detail || `HTTP ${res.status}`);
  setToken(body.token);
}

// ---- OIDC: authorization code flow with PKCE (RFC 7636), public client ----------------------------
async function discovery(oidc) {
  const r = await fetch(`${oidc.issuer}/.well-known/openid-configuration`);
  if (!r.ok) throw new Error(`OIDC discovery: HTTP ${r.status}`);
  return r.json();
}

function redirectUri() { return location.origin + location.pathname; }

export async function startOidcLogin(oidc) {
  const meta = await discovery(oidc);
  const verifier = b64url(crypto.getRandomValues(new Uint8Array(48)));
  const challenge = b64url(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier)));
  const state = b64url(crypto.getRandomValues(new Uint8Array(16)));
  sessionStorage.setItem("crm.oidc", JSON.stringify({ verifier, state, hash: location.hash }));
  const q = new URLSearchParams({ response_type: "code", client_id: oidc.client_id, redirect_uri: redirectUri(),
                                  scope: oidc.scope, state, code_challenge: challenge, code_challenge_method: "S256" });
  if (oidc.audience) q.set("audience", oidc.audience);
  location.assign(`${meta.authorization_endpoint}?${q}`);
}

// Back from the identity provider with ?code=&state=: exchange the code for tokens.
export async function completeOidcLogin(oidc) {
  const params = new URLSearchParams(location.search);
  if (!params.has("code") && !params.has("error")) return false;
  const saved = JSON.parse(sessionStorage.getItem("crm.oidc") || "{}");
  sessionStorage.removeItem("crm.oidc");
  history.replaceState(null, "", location.pathname + (saved.hash || ""));
  if (params.get("error")) throw new Error(params.get("error_description") || params.get("error"));
  if (!saved.state || params.get("state") !== saved.state) throw new Error("OIDC: the state does not match");
  const meta = await discovery(oidc);
  const res = await fetch(meta.token_endpoint, {
    method: "POST", headers: { "Content-Type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({ grant_type: "authorization_code", code: params.get("code"),
                                redirect_uri: redirectUri(), client_id: oidc.client_id, code_verifier: saved.verifier }),
  });
  const body = await res.json().catch(() => ({}));
  if (!res.ok || !body.access_token) throw new Error(body.error_description || body.error || `HTTP ${res.status}`);
  // the services validate the access token (JWKS); it carries sub, name, roles, team, lang
  setToken(body.access_token);
  return true;
}
