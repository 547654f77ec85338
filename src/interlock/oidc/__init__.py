"""Bearer JWTs from an external OpenID Connect provider, verified against its JWK Set, for principals."""

from interlock.oidc.bearer import OidcBearer, open_bearer
from interlock.oidc.config import CONFIG_FILE, OidcConfig, load_config, read_config

__all__ = ["CONFIG_FILE", "OidcBearer", "OidcConfig", "load_config", "open_bearer", "read_config"]
