"""`oidc.yaml`: what a configuration may say (no `none`, no HMAC, https keys, one key source), and `interlock serve`
with it as a real process."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
import yaml

from e2e.e2e_support import clean_env
from e2e.served import seed_callers, seeded_home, serving
from interlock.core.errors import RequestError
from interlock.oidc import load_config

from .conftest import submission
from .test_oidc import AUDIENCE, ISSUER, PROVIDER_KEYS, RSA_KEY, JwksServer

MINIMAL = {"issuer": ISSUER, "audience": AUDIENCE, "jwks_url": "https://idp.example.com/jwks", "kind": "service"}


def test_the_defaults(tmp_path: Path) -> None:
    config = load_config(yaml.safe_dump(MINIMAL), tmp_path)
    assert config.algorithms == ("RS256", "ES256", "EdDSA")
    assert (config.principal_claim, config.principal_prefix, config.unmapped) == ("sub", "oidc:", "prefix")
    assert (config.leeway_seconds, config.max_token_bytes) == (30, 8192)
    assert (config.jwks_cache_seconds, config.jwks_min_refresh_seconds) == (300, 30)


@pytest.mark.parametrize(("changes", "code", "fragment"), [
    ({"algorithms": ["none"]}, "input.invalid", "algorithms.0"),
    ({"algorithms": ["HS256"]}, "input.invalid", "algorithms.0"),
    ({"algorithms": []}, "input.invalid", "algorithms"),
    ({"jwks_url": "http://idp.example.com/jwks"}, "input.invalid", "https"),
    ({"jwks_url": "file:///etc/jwks.json"}, "input.invalid", "https"),
    ({"jwks_file": "jwks.json"}, "input.invalid", "exactly one"),
    ({"jwks_url": None}, "input.invalid", "exactly one"),
    ({"principal_prefix": ""}, "input.invalid", "principal_prefix"),
    ({"kind": None}, "input.invalid", "kind"),
    ({"kind": "robot"}, "input.invalid", "kind"),
    ({"issuer": ""}, "input.invalid", "issuer"),
    ({"audiences": ["x"]}, "input.unknown_field", "audiences"),
    ({"attributes": {"team": "a"}, "attribute_claims": ["team"]}, "input.invalid", "both"),
    ({"attribute_claims": ["exp"]}, "input.invalid", "attribute_claims"),
    ({"subjects": {"bot": "a\nb"}}, "input.invalid", "subjects"),
    ({"leeway_seconds": 3600}, "input.invalid", "leeway_seconds"),
    ({"jwks_min_refresh_seconds": 0}, "input.invalid", "jwks_min_refresh_seconds"),
], ids=lambda value: json.dumps(value) if isinstance(value, dict) else None)
def test_a_configuration_that_would_weaken_verification_is_refused(
    tmp_path: Path, changes: dict[str, Any], code: str, fragment: str
) -> None:
    document = {name: value for name, value in {**MINIMAL, **changes}.items() if value is not None}
    with pytest.raises(RequestError) as refused:
        load_config(yaml.safe_dump(document), tmp_path)
    assert refused.value.code == code and fragment in refused.value.message, refused.value.message


def test_duplicate_keys_are_refused(tmp_path: Path) -> None:
    with pytest.raises(RequestError, match="YAML"):
        load_config(yaml.safe_dump(MINIMAL) + f"audience: {AUDIENCE}-other\n", tmp_path)


def test_plain_http_is_only_for_a_loopback_provider(tmp_path: Path) -> None:
    for url in ("http://127.0.0.1:8081/jwks", "http://[::1]:8081/jwks", "http://localhost/jwks"):
        assert load_config(yaml.safe_dump({**MINIMAL, "jwks_url": url}), tmp_path).jwks_url == url


def test_serve_refuses_to_start_with_a_bad_configuration(tmp_path: Path) -> None:
    home = seeded_home(tmp_path)
    (home / "oidc.yaml").write_text(yaml.safe_dump({**MINIMAL, "algorithms": ["RS256", "HS256"]}))
    done = subprocess.run([sys.executable, "-m", "interlock.cli", "serve", "--port", "0"], capture_output=True,
                          timeout=60, env=clean_env(INTERLOCK_HOME=str(home)))
    assert done.returncode == 2, done.stderr.decode()
    assert json.loads(done.stdout)["error"]["code"] == "input.invalid"


@pytest.mark.slow
def test_interlock_serve_accepts_the_providers_tokens_from_home_oidc_yaml(tmp_path: Path) -> None:
    home = seeded_home(tmp_path)
    token = seed_callers(home)
    provider = JwksServer(list(PROVIDER_KEYS))
    try:
        (home / "oidc.yaml").write_text(yaml.safe_dump({
            "issuer": ISSUER, "audience": AUDIENCE, "jwks_url": provider.url, "kind": "agent",
            "subjects": {"finance-bot": "agent:finance-bot"}, "attribute_claims": ["known_recipients"]}))
        with serving(home) as base, httpx.Client(base_url=base, timeout=30) as http:
            now = int(time.time())
            signed = jwt.encode({"iss": ISSUER, "aud": AUDIENCE, "sub": "finance-bot", "iat": now, "exp": now + 60,
                                 "known_recipients": []}, RSA_KEY, algorithm="RS256",
                                headers={"kid": "rsa-1", "typ": "at+jwt"})
            submitted = http.post("/v1/requests", json=submission(), headers={"Authorization": f"Bearer {signed}"})
            assert submitted.status_code == 201, submitted.text
            request_id = submitted.json()["request_id"]
            read = http.get(f"/v1/requests/{request_id}", headers={"Authorization": f"Bearer {token['alice']}"})
            assert read.status_code == 200, read.text
            forged = signed[:-4] + ("AAAA" if not signed.endswith("AAAA") else "BBBB")
            refused = http.post("/v1/requests", json=submission(), headers={"Authorization": f"Bearer {forged}"})
            assert refused.status_code == 401 and refused.json()["error"]["code"] == "auth.invalid"
        assert provider.fetches >= 1
    finally:
        provider.stop()
