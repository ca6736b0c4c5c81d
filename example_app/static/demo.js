// The browser side of flask-dualtoken's cookie mode, in plain JavaScript.
//
// The tokens are HttpOnly cookies: this page never sees them. It keeps only the CSRF
// token (a readable cookie it echoes in a header) and the access token's expiry, which it
// shares with its other tabs through localStorage (not a secret). When the access token
// runs out, the page calls reissue; two tabs doing so at the same moment both get the same
// new pair (the server's grace window), so both stay signed in.
//
// Sensitive actions: the page shows when the user last proved who they are (the access
// token's auth_time, from /me), re-authenticates with the password (POST /auth/reauth: a
// new pair for the same session), and changes the password, which the server allows only
// after a recent login and which ends every other session of the user.
"use strict";

(() => {
  const PREFIX = document.body.dataset.prefix;
  const CSRF_COOKIE = document.body.dataset.csrfCookie;
  const CSRF_HEADER = document.body.dataset.csrfHeader;
  const EXPIRES_AT = "dualtoken-demo:expires-at";
  const LIFETIME = "dualtoken-demo:lifetime";
  const $ = (id) => document.getElementById(id);

  let signedIn = false;
  let reissuing = null; // one reissue at a time in this tab
  let reissues = 0;
  let nextTry = 0; // no more than one automatic attempt every 2 s (say, while Redis is down)
  let listing = 0; // the latest session list asked for; an answer to an older one is dropped
  let authTime = null; // when the user last proved who they are (Unix seconds), from /me

  const UNITS = [
    ["day", 86400],
    ["hour", 3600],
    ["minute", 60],
    ["second", 1],
  ];

  // A number of seconds in words, to the largest unit and the next one down:
  // 60 -> "1 minute", 90 -> "1 minute 30 seconds", 1209600 -> "14 days".
  function duration(seconds) {
    const total = Math.round(Number(seconds));
    if (!Number.isFinite(total) || total < 0) return `${seconds} s`;
    if (total === 0) return "0 seconds";
    const words = (count, unit) => `${count} ${unit}${count === 1 ? "" : "s"}`;
    const at = UNITS.findIndex(([, size]) => total >= size);
    const [unit, size] = UNITS[at];
    const parts = [words(Math.floor(total / size), unit)];
    if (at + 1 < UNITS.length) {
      const [smaller, smallerSize] = UNITS[at + 1];
      const rest = Math.floor((total % size) / smallerSize);
      if (rest > 0) parts.push(words(rest, smaller));
    }
    return parts.join(" ");
  }

  function log(message, isError = false) {
    const item = document.createElement("li");
    item.textContent = `${new Date().toLocaleTimeString()}  ${message}`;
    if (isError) item.className = "error";
    $("log").prepend(item);
  }

  function csrfToken() {
    for (const part of document.cookie.split("; ")) {
      const [name, ...value] = part.split("=");
      if (name === CSRF_COOKIE) return decodeURIComponent(value.join("="));
    }
    return "";
  }

  function remember(body) {
    localStorage.setItem(EXPIRES_AT, String(Date.now() + body.expires_in * 1000));
    localStorage.setItem(LIFETIME, String(body.expires_in));
  }

  async function jsonOf(response) {
    try {
      return await response.json();
    } catch {
      return {};
    }
  }

  // fetch with the cookies, the CSRF header on state-changing requests, a JSON body if
  // given, and one reissue and retry when the access token is missing (its cookie ran
  // out) or expired.
  async function call(method, path, { retry = true, json } = {}) {
    const headers = method === "GET" ? {} : { [CSRF_HEADER]: csrfToken() };
    const options = { method, headers, credentials: "same-origin" };
    if (json !== undefined) {
      headers["Content-Type"] = "application/json";
      options.body = JSON.stringify(json);
    }
    const response = await fetch(path, options);
    if (response.status === 401 && retry) {
      const body = await jsonOf(response.clone());
      if (["token_missing", "token_expired"].includes(body.error) && csrfToken()) {
        if (await reissue(`${path} answered ${body.error}`)) {
          return call(method, path, { retry: false, json });
        }
      }
    }
    return response;
  }

  // "10:32:15 (2 minutes ago)": when the user last proved who they are.
  function showAuthTime() {
    if (authTime === null) {
      $("auth-time").textContent = "-";
      return;
    }
    const ago = Math.max(0, Math.floor(Date.now() / 1000 - authTime));
    const at = new Date(authTime * 1000).toLocaleTimeString();
    $("auth-time").textContent = `${at} (${duration(ago)} ago)`;
  }

  // A refusal's error code, and when to retry if the server said (Retry-After is seconds
  // here; an HTTP date, the header's other form, shows as is).
  function refusal(response, body) {
    const wait = response.headers.get("Retry-After");
    const after = wait && /^\d+$/.test(wait) ? duration(wait) : wait;
    return `${body.error}${after ? `, retry in ${after}` : ""}`;
  }

  function reissue(reason) {
    if (reissuing === null) {
      reissuing = doReissue(reason).finally(() => {
        reissuing = null;
      });
      // The server records each rotation as the session's last use: show it. Not awaited,
      // and with no reissue of its own, so a list that fails cannot start another round.
      reissuing.then((ok) => {
        if (ok && signedIn) showSessions(false);
      });
    }
    return reissuing;
  }

  async function doReissue(reason) {
    let response;
    try {
      response = await fetch(`${PREFIX}/reissue`, {
        method: "POST",
        headers: { [CSRF_HEADER]: csrfToken() },
        credentials: "same-origin",
      });
    } catch (error) {
      log(`reissue failed: ${error}`, true);
      return false;
    }
    const body = await jsonOf(response);
    if (response.ok) {
      remember(body);
      reissues += 1;
      $("reissues").textContent = String(reissues);
      log(`reissued (${reason}): new access token for ${duration(body.expires_in)}`);
      return true;
    }
    log(`reissue refused: ${response.status} ${body.error}`, true);
    if (response.status === 401 || response.status === 403) {
      showSignedOut(`session ended (${body.error})`);
    }
    return false; // 503: the store is down; the next tick tries again
  }

  function tick() {
    const expiresAt = Number(localStorage.getItem(EXPIRES_AT) || 0);
    const lifetime = Number(localStorage.getItem(LIFETIME) || 1);
    const left = Math.max(0, (expiresAt - Date.now()) / 1000);
    $("expires-in").textContent = String(Math.ceil(left));
    $("expiry-bar").value = left / lifetime;
    if (signedIn) showAuthTime();
    if (signedIn && left === 0 && reissuing === null && Date.now() >= nextTry) {
      nextTry = Date.now() + 2000;
      reissue("access token expired");
    }
  }

  async function showMe() {
    const response = await call("GET", "/me");
    const body = await jsonOf(response);
    if (!response.ok) {
      log(`GET /me: ${response.status} ${body.error}`, true);
      return false;
    }
    $("me").textContent = JSON.stringify(body, null, 2);
    $("who").textContent = body.username;
    authTime = typeof body.auth_time === "number" ? body.auth_time : null;
    showAuthTime();
    log(`GET /me: ${body.username} (${body.role})`);
    return true;
  }

  async function showSessions(retry = true) {
    const ticket = ++listing;
    const response = await call("GET", `${PREFIX}/sessions`, { retry });
    if (!response.ok) return;
    const { sessions } = await response.json();
    if (ticket !== listing || !signedIn) return; // a newer list is coming, or signed out
    const rows = sessions.map((session) => {
      const row = document.createElement("tr");
      row.dataset.sid = session.sid;
      if (session.current) row.className = "current";
      const time = (seconds) => new Date(seconds * 1000).toLocaleTimeString();
      for (const text of [
        session.sid.slice(0, 8) + "...",
        time(session.created_at),
        time(session.last_used_at),
        `${session.ip} ${session.user_agent.slice(0, 40)}`,
      ]) {
        const cell = document.createElement("td");
        cell.textContent = text;
        row.append(cell);
      }
      const action = document.createElement("td");
      if (session.current) {
        action.textContent = "this browser";
      } else {
        const end = document.createElement("button");
        end.type = "button";
        end.className = "end-session";
        end.textContent = "End";
        end.addEventListener("click", () => endSession(session.sid));
        action.append(end);
      }
      row.append(action);
      return row;
    });
    $("sessions").replaceChildren(...rows);
  }

  async function endSession(sid) {
    const response = await call("DELETE", `${PREFIX}/sessions/${encodeURIComponent(sid)}`);
    log(`ended session ${sid.slice(0, 8)}...: ${response.status}`, !response.ok);
    await showSessions();
  }

  async function showSignedIn() {
    signedIn = true;
    $("logged-out").hidden = true;
    $("logged-in").hidden = false;
    tick();
    if (await showMe()) await showSessions();
  }

  function showSignedOut(reason) {
    signedIn = false;
    localStorage.removeItem(EXPIRES_AT); // tells the other tabs too
    $("logged-in").hidden = true;
    $("logged-out").hidden = false;
    $("who").textContent = "";
    $("sessions").replaceChildren();
    authTime = null;
    showAuthTime();
    log(`signed out: ${reason}`);
  }

  async function login(event) {
    event.preventDefault();
    const response = await fetch(`${PREFIX}/login`, {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-Token-Transport": "cookies" },
      credentials: "same-origin",
      body: JSON.stringify({ username: $("username").value, password: $("password").value }),
    });
    const body = await jsonOf(response);
    if (!response.ok) {
      log(`login refused: ${refusal(response, body)}`, true);
      return;
    }
    remember(body);
    const access = duration(body.expires_in);
    log(`logged in: access token for ${access}, session for ${duration(body.refresh_expires_in)}`);
    await showSignedIn();
  }

  // Prove who you are again: a new pair for this same session, its auth_time now.
  async function reauthenticate(event) {
    event.preventDefault();
    const password = $("reauth-password").value;
    const response = await call("POST", `${PREFIX}/reauth`, {
      json: { username: $("who").textContent, password },
    });
    const body = await jsonOf(response);
    $("reauth-password").value = "";
    if (!response.ok) {
      log(`re-authentication refused: ${refusal(response, body)}`, true);
      if (body.error === "session_revoked") showSignedOut("session ended (session_revoked)");
      return;
    }
    remember(body);
    log(`re-authenticated: new access token for ${duration(body.expires_in)}`);
    await showMe();
  }

  async function changePassword(event) {
    event.preventDefault();
    const response = await call("POST", "/account/password", {
      json: { new_password: $("new-password").value },
    });
    const body = await jsonOf(response);
    if (!response.ok) {
      const hint =
        body.error === "insufficient_user_authentication" ? ": re-authenticate first" : "";
      log(`password change refused: ${body.error}${hint}`, true);
      return;
    }
    $("new-password").value = "";
    log("password changed; every other session has ended");
    await showSessions();
  }

  async function logout(path, what) {
    const response = await call("POST", path);
    if (response.ok) {
      showSignedOut(what);
    } else {
      log(`${path}: ${response.status} ${(await jsonOf(response)).error}`, true);
    }
  }

  window.addEventListener("storage", (event) => {
    if (event.key === EXPIRES_AT && event.newValue === null && signedIn) {
      signedIn = false;
      showSignedOut("logged out in another tab");
    }
  });
  $("login-form").addEventListener("submit", login);
  $("reauth-form").addEventListener("submit", reauthenticate);
  $("password-form").addEventListener("submit", changePassword);
  $("call-me").addEventListener("click", showMe);
  $("call-admin").addEventListener("click", async () => {
    const response = await call("GET", "/admin");
    const body = await jsonOf(response);
    const said = body.error ? `${body.error}: ${body.message}` : body.message;
    log(`GET /admin: ${response.status} ${said}`, !response.ok);
  });
  $("reissue-now").addEventListener("click", () => reissue("button"));
  $("refresh-sessions").addEventListener("click", () => showSessions());
  $("logout").addEventListener("click", () => logout(`${PREFIX}/logout`, "logged out"));
  $("logout-all").addEventListener("click", () =>
    logout(`${PREFIX}/logout-all`, "logged out everywhere"),
  );
  setInterval(tick, 200);

  // A reload or a second tab: the cookies are shared, so this may already be signed in.
  if (csrfToken()) {
    showSignedIn();
  } else {
    log("not signed in");
  }
})();
