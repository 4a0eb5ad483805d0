"""``certgate est user|code`` through the real CLI: secrets are never printed or stored."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from tests.est_helpers import write_est_config
from tests.helpers import certgate, free_port, init_gateway


def test_user_add_list_delete(tmp_path: Path) -> None:
    cfg = write_est_config(tmp_path, est_port=free_port())
    init_gateway(cfg)
    (tmp_path / "pw").write_text("s3cret-pass\n")
    certgate("est", "user", "add", "carol", "--group", "ops", "--password-file",
             str(tmp_path / "pw"), "-c", str(cfg), check=True)  # fmt: skip
    again = certgate("est", "user", "add", "carol", "--password-file", str(tmp_path / "pw"),
                     "-c", str(cfg))  # fmt: skip
    assert again.returncode == 1 and "exists" in again.stderr
    listed = json.loads(
        certgate("est", "user", "list", "-c", str(cfg), "--json", check=True).stdout
    )
    assert listed == [{"username": "carol", "groups": ["ops"]}]
    db = sqlite3.connect(tmp_path / "data" / "certgate.db")
    (stored,) = db.execute("SELECT password_hash FROM est_users").fetchone()
    assert stored.startswith("scrypt$") and "s3cret-pass" not in stored
    certgate("est", "user", "delete", "carol", "-c", str(cfg), check=True)
    gone = certgate("est", "user", "delete", "carol", "-c", str(cfg))
    assert gone.returncode == 1 and "no EST user" in gone.stderr


def test_code_is_printed_once_and_stored_hashed(tmp_path: Path) -> None:
    cfg = write_est_config(
        tmp_path, est_port=free_port(), est='[est.labels.iot]\ntemplate = "device"\n'
    )
    init_gateway(cfg)
    out = certgate("est", "code", "create", "--label", "iot", "--identity", "dev-1", "--ttl",
                   "30m", "-c", str(cfg), check=True).stdout  # fmt: skip
    code = out.splitlines()[0]
    assert len(code.replace("-", "")) == 32 and "not shown again" in out
    db = sqlite3.connect(tmp_path / "data" / "certgate.db")
    rows = db.execute("SELECT code_hash, label, identity FROM est_codes").fetchall()
    assert len(rows) == 1 and rows[0][1:] == ("iot", "dev-1") and code not in rows[0][0]
    unknown = certgate("est", "code", "create", "--label", "nope", "--identity", "x",
                       "-c", str(cfg))  # fmt: skip
    assert unknown.returncode == 1 and "no EST label" in unknown.stderr
