"""Docker Compose: write definitions.json with each service user's password hash filled in, for
RabbitMQ to load at boot (the committed file holds no password; in Kubernetes `set-passwords.sh`
sets them after the import instead). Standard library only: it runs in a bare python image.

    python with-passwords.py definitions.json /out/definitions.json

Passwords come from RABBITMQ_<SERVICE>_PASSWORD (RABBITMQ_LEADS_PASSWORD, ...; all required) and
an administrator `crm-admin` (management UI, tag administrator) from RABBITMQ_ADMIN_PASSWORD. The
output is readable by the broker only through its volume; it is never written to the repository."""
from __future__ import annotations

import base64
import hashlib
import json
import os
import sys

ADMIN = "crm-admin"


def password_hash(password: str, salt: bytes | None = None) -> str:
    """rabbit_password_hashing_sha256: base64(salt(4) + sha256(salt + utf8 password))."""
    salt = os.urandom(4) if salt is None else salt
    return base64.b64encode(salt + hashlib.sha256(salt + password.encode("utf-8")).digest()).decode()


def env_name(user: str) -> str:
    return "RABBITMQ_" + user.removeprefix("crm-").upper().replace("-", "_") + "_PASSWORD"


def fill(defs: dict, env) -> dict:
    missing = []
    for u in defs["users"]:
        password = env.get(env_name(u["name"]), "")
        if not password:
            missing.append(env_name(u["name"]))
            continue
        u["password_hash"] = password_hash(password)
    admin = env.get("RABBITMQ_ADMIN_PASSWORD", "")
    if not admin:
        missing.append("RABBITMQ_ADMIN_PASSWORD")
    if missing:
        raise SystemExit(f"set {', '.join(missing)}")
    defs["users"].append({"name": ADMIN, "password_hash": password_hash(admin),
                          "hashing_algorithm": "rabbit_password_hashing_sha256", "tags": ["administrator"],
                          "limits": {}})
    for vhost in defs["vhosts"]:
        defs["permissions"].append({"user": ADMIN, "vhost": vhost["name"], "configure": ".*", "write": ".*",
                                    "read": ".*"})
    return defs


def main(argv) -> int:
    source, target = argv[1], argv[2]
    with open(source, encoding="utf-8") as f:
        defs = fill(json.load(f), os.environ)
    tmp = target + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(defs, f)
    os.chmod(tmp, 0o644)  # the broker runs as another user in its own container
    os.replace(tmp, target)
    print(f"wrote {target}: {len(defs['users'])} users", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
