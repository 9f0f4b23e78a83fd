#!/usr/bin/python3
"""An independent SIP over WebSocket client (RFC 7118) for the interop
tests: built on the `websockets` library (Debian's python3-websockets), with
digest authentication (RFC 3261 §22, RFC 2617 / RFC 7616 MD5 with qop=auth)
from Python's hashlib. Neither sipstorm's nor Kamailio's code is involved.

It registers N users with a SIP registrar over ws:// or wss://, each user on
one WebSocket connection (a browser tab's softphone): REGISTER -> 401 ->
REGISTER with Authorization -> 200, writing Via and Contact as browsers do
(SIP/2.0/WS or WSS, a random `.invalid` host, `;transport=ws`, RFC 7118
§5.2). It checks what the server must do: agree on the `sip` subprotocol,
send every SIP message as one WebSocket message, echo our Via branch, bind
our Contact. It also sends a ping and expects its pong (RFC 6455 §5.5.2).

Usage: ws-register.py URL USERS [--ca FILE] [--password-pattern PW]
  URL    ws://127.0.0.1:PORT/ or wss://127.0.0.1:PORT/
  USERS  how many users (u0000, u0001, ...) register
  --password-pattern  password of user U, {user} replaced (default pw-{user})
  --ca   PEM certificate to trust for wss
Prints `ws-register: N/N registered over ws|wss` and exits 0 when every one
succeeded, else says what went wrong and exits 1.
"""

import argparse
import asyncio
import hashlib
import random
import re
import ssl
import string
import sys
from urllib.parse import urlparse

import websockets


def md5(s):
    return hashlib.md5(s.encode()).hexdigest()


def rand(n=10):
    return "".join(random.choice(string.ascii_lowercase + string.digits) for _ in range(n))


def header(msg, name):
    for line in msg.split("\r\n")[1:]:
        if not line:
            break
        k, _, v = line.partition(":")
        if k.strip().lower() == name.lower():
            return v.strip()
    return None


def challenge_params(value):
    """Parameters of a Digest challenge (RFC 7616 §3.3)."""
    _, _, rest = value.partition(" ")
    return {k.lower(): v.strip('"') for k, v in re.findall(r'(\w+)=("[^"]*"|[^,\s]+)', rest)}


def register(uri_host, proto, user, host, call_id, cseq, branch, auth=None):
    lines = [
        f"REGISTER sip:{uri_host} SIP/2.0",
        f"Via: SIP/2.0/{proto} {host};rport;branch=z9hG4bK{branch}",
        "Max-Forwards: 70",
        f"From: <sip:{user}@{uri_host}>;tag={call_id[:8]}",
        f"To: <sip:{user}@{uri_host}>",
        f"Call-ID: {call_id}",
        f"CSeq: {cseq} REGISTER",
        f"Contact: <sip:{user}@{host};transport=ws>;expires=600",
        "Expires: 600",
        "User-Agent: ws-register.py (python websockets)",
    ]
    if auth:
        lines.append(f"Authorization: {auth}")
    lines.append("Content-Length: 0")
    return "\r\n".join(lines) + "\r\n\r\n"


def authorization(user, password, uri, ch):
    realm, nonce = ch["realm"], ch["nonce"]
    ha1 = md5(f"{user}:{realm}:{password}")
    ha2 = md5(f"REGISTER:{uri}")
    fields = [f'username="{user}"', f'realm="{realm}"', f'nonce="{nonce}"', f'uri="{uri}"']
    if "auth" in ch.get("qop", "").split(","):
        cnonce, nc = rand(16), "00000001"
        resp = md5(f"{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}")
        fields += ["qop=auth", f"nc={nc}", f'cnonce="{cnonce}"']
    else:
        resp = md5(f"{ha1}:{nonce}:{ha2}")
    fields.append(f'response="{resp}"')
    fields.append("algorithm=MD5")
    if "opaque" in ch:
        fields.append(f'opaque="{ch["opaque"]}"')
    return "Digest " + ", ".join(fields)


async def one(url, ctx, user, password, proto, uri_host):
    """Register `user` on its own connection; returns None or what failed."""
    async with websockets.connect(url, subprotocols=["sip"], ssl=ctx, open_timeout=10) as ws:
        if ws.subprotocol != "sip":
            return f"{user}: the server did not agree on sip ({ws.subprotocol!r})"
        pong = await ws.ping()
        await asyncio.wait_for(pong, 5)
        host = rand(12) + ".invalid"
        call_id = rand(20)
        branch = rand(16)
        await ws.send(register(uri_host, proto, user, host, call_id, 1, branch))
        r = await asyncio.wait_for(ws.recv(), 10)
        if isinstance(r, bytes):
            r = r.decode()
        if not r.startswith("SIP/2.0 401"):
            return f"{user}: expected 401, got {r.splitlines()[0]!r}"
        if f"branch=z9hG4bK{branch}" not in (header(r, "Via") or ""):
            return f"{user}: the 401's Via is not ours: {header(r, 'Via')!r}"
        ch = challenge_params(header(r, "WWW-Authenticate") or "")
        if ch.get("algorithm", "MD5").upper() != "MD5":
            return f"{user}: challenge algorithm {ch.get('algorithm')} (this client does MD5)"
        auth = authorization(user, password, f"sip:{uri_host}", ch)
        branch = rand(16)
        await ws.send(register(uri_host, proto, user, host, call_id, 2, branch, auth))
        r = await asyncio.wait_for(ws.recv(), 10)
        if isinstance(r, bytes):
            r = r.decode()
        if not r.startswith("SIP/2.0 200"):
            return f"{user}: expected 200, got {r.splitlines()[0]!r}"
        contact = header(r, "Contact") or ""
        if f"@{host};transport=ws" not in contact:
            return f"{user}: our Contact is not bound: {contact!r}"
    return None


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("url")
    ap.add_argument("users", type=int)
    ap.add_argument("--ca")
    ap.add_argument("--password-pattern", default="pw-{user}")
    a = ap.parse_args()
    u = urlparse(a.url)
    ctx = None
    proto = "WS"
    if u.scheme == "wss":
        proto = "WSS"
        ctx = ssl.create_default_context(cafile=a.ca) if a.ca else ssl.create_default_context()
    users = [f"u{i:04d}" for i in range(a.users)]
    results = await asyncio.gather(
        *(one(a.url, ctx, usr, a.password_pattern.replace("{user}", usr), proto, u.hostname + (f":{u.port}" if u.port else ""))
          for usr in users),
        return_exceptions=True,
    )
    bad = [r if isinstance(r, str) else f"{users[i]}: {type(r).__name__}: {r}"
           for i, r in enumerate(results) if r is not None]
    for b in bad[:5]:
        print(f"ws-register: {b}", file=sys.stderr)
    ok = len(users) - len(bad)
    print(f"ws-register: {ok}/{len(users)} registered over {u.scheme}")
    return 0 if not bad else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
