"""A real SMTP server for the email.send tests (aiosmtpd), on 127.0.0.1.

Usage: smtp_server.py PORT MODE OUT_DIR [CERT KEY] [USER PASSWORD]
MODE is plain, starttls (required before MAIL) or tls (implicit). Each accepted message is
written to OUT_DIR/N.json: envelope, the raw message, the authenticated login, whether the
session was encrypted. Prints "ready" once it accepts connections; stops when stdin closes.
"""

import json
import os
import ssl
import sys

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

port, mode, out_dir = int(sys.argv[1]), sys.argv[2], sys.argv[3]
rest = sys.argv[4:]
cert, key = (rest[0], rest[1]) if mode != "plain" else (None, None)
rest = rest[2:] if mode != "plain" else rest
user, password = (rest[0], rest[1]) if len(rest) >= 2 else (None, None)


class Handler:
    async def handle_DATA(self, server, session, envelope):
        n = len([f for f in os.listdir(out_dir) if f.endswith(".json")])
        encrypted = session.ssl is not None or (
            server.transport is not None
            and server.transport.get_extra_info("ssl_object") is not None
        )
        auth = session.auth_data
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "data": envelope.content.decode("utf8", errors="replace"),
            "login": auth.login.decode() if isinstance(auth, LoginPassword) else None,
            "encrypted": encrypted,
        }
        tmp = os.path.join(out_dir, f"{n}.tmp")
        with open(tmp, "w") as f:
            json.dump(record, f)
        os.rename(tmp, os.path.join(out_dir, f"{n}.json"))
        return "250 2.0.0 Ok: queued as M%d" % n


def authenticator(server, session, envelope, mechanism, auth_data):
    ok = (
        isinstance(auth_data, LoginPassword)
        and auth_data.login == user.encode()
        and auth_data.password == password.encode()
    )
    return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)


context = None
if cert:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)

kwargs = dict(hostname="127.0.0.1", port=port, server_hostname="localhost")
if user:
    kwargs.update(authenticator=authenticator, auth_required=True, auth_require_tls=mode != "plain")
if mode == "starttls":
    kwargs.update(tls_context=context, require_starttls=True)
elif mode == "tls":
    kwargs.update(ssl_context=context)

controller = Controller(Handler(), **kwargs)
controller.start()
print("ready", flush=True)
sys.stdin.read()
controller.stop()
