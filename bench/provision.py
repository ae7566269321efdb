#!/usr/bin/env python3
"""Signs a user in to a running latchkey and prints what the benchmark scenarios need as
`export NAME=value` lines for bash's eval: the forward-auth and session cookies (through
/login?rd=), the CSRF cookie and form fields for repeated password logins, and a checked
authorize path for the authorization-code flow.

usage: provision.py BASE_URL USER PASSWORD CLIENT_ID CLIENT_SECRET REDIRECT_URI RD
"""
import base64
import html
import http.client
import json
import re
import shlex
import sys
import urllib.parse


def cookies_of(resp):
    out = {}
    for name, value in resp.getheaders():
        if name.lower() == "set-cookie":
            pair = value.split(";", 1)[0]
            k, _, v = pair.partition("=")
            out[k.strip()] = v.strip()
    return out


def hidden(page, name):
    m = re.search(r'<input[^>]*name="%s"[^>]*value="([^"]*)"' % re.escape(name), page)
    if not m:
        m = re.search(r'<input[^>]*value="([^"]*)"[^>]*name="%s"' % re.escape(name), page)
    return html.unescape(m.group(1)) if m else None


def main():
    base, user, password, client_id, secret, redirect_uri, rd = sys.argv[1:8]
    u = urllib.parse.urlsplit(base)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)

    def req(method, path, body=None, headers=None):
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        data = r.read().decode("utf-8", "replace")
        return r, data

    # The login page: CSRF cookie and hidden fields.
    r, page = req("GET", "/login?rd=" + urllib.parse.quote(rd, safe=""))
    if r.status != 200:
        sys.exit(f"GET /login?rd=: {r.status} {page[:200]}")
    csrf_cookie = cookies_of(r).get("latchkey-csrf")
    csrf = hidden(page, "csrf")
    return_to = hidden(page, "return_to") or ""
    kept_rd = hidden(page, "rd") or rd
    if not csrf_cookie or not csrf:
        sys.exit("no CSRF cookie or field on the login page")
    form = {"csrf": csrf, "return_to": return_to, "rd": kept_rd,
            "username": user, "password": password}
    r, page = req("POST", "/login", urllib.parse.urlencode(form), {
        "Content-Type": "application/x-www-form-urlencoded",
        "Cookie": f"latchkey-csrf={csrf_cookie}",
    })
    jar = cookies_of(r)
    if r.status != 303 or "latchkey-fa" not in jar or "latchkey-session" not in jar:
        sys.exit(f"POST /login: {r.status} {sorted(jar)} {page[:200]}")

    # The login body for scenario 8 (no rd: a plain sign-in to the portal).
    login_body = urllib.parse.urlencode({"csrf": csrf, "return_to": return_to,
                                         "username": user, "password": password})

    # One authorization-code flow, to check the path the flow scenario drives.
    basic = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    authorize = "/authorize?" + urllib.parse.urlencode({
        "response_type": "code", "client_id": client_id, "redirect_uri": redirect_uri,
        "scope": "openid profile", "state": "benchstate", "nonce": "benchnonce"})
    r, page = req("GET", authorize, None, {"Cookie": f"latchkey-session={jar['latchkey-session']}"})
    loc = r.getheader("Location") or ""
    m = re.search(r"[?&]code=([^&]+)", loc)
    if r.status != 303 or not m:
        sys.exit(f"GET /authorize: {r.status} {loc} {page[:300]}")
    r, page = req("POST", "/token", urllib.parse.urlencode({
        "grant_type": "authorization_code", "code": urllib.parse.unquote(m.group(1)),
        "redirect_uri": redirect_uri}), {
        "Content-Type": "application/x-www-form-urlencoded", "Authorization": f"Basic {basic}"})
    tok = json.loads(page) if r.status == 200 else {}
    if r.status != 200 or "refresh_token" not in tok or "id_token" not in tok:
        sys.exit(f"POST /token (authorization_code): {r.status} {page[:300]}")

    out = {
        "FA_COOKIE": jar["latchkey-fa"],
        "SESSION_COOKIE": jar["latchkey-session"],
        "CSRF_COOKIE": csrf_cookie,
        "LOGIN_BODY": login_body,
        "FLOW_AUTHORIZE": authorize,
        "FLOW_BASIC": f"Basic {basic}",
        "FLOW_REDIRECT_ENC": urllib.parse.quote(redirect_uri, safe=""),
    }
    for k, v in out.items():
        print(f"export {k}={shlex.quote(v)}")


if __name__ == "__main__":
    main()
