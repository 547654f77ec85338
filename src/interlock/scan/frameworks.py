"""The control frameworks a finding maps to: one label per control, spelled the same in every report.

OWASP Non-Human Identities Top 10 (2025): https://owasp.org/www-project-non-human-identities-top-10/2025/
NIST CSF 2.0 (Protect / Identity Management, Authentication and Access Control): NIST CSWP 29.
NIST SP 800-207 Zero Trust Architecture, section 2.1 tenets.
"""

from __future__ import annotations

# OWASP NHI Top 10, 2025.
NHI1_OFFBOARDING = "NHI1:2025 Improper Offboarding"
NHI2_SECRET_LEAKAGE = "NHI2:2025 Secret Leakage"  # noqa: S105 - a label, not a secret
NHI3_THIRD_PARTY = "NHI3:2025 Vulnerable Third-Party NHI"
NHI4_INSECURE_AUTH = "NHI4:2025 Insecure Authentication"
NHI5_OVERPRIVILEGED = "NHI5:2025 Overprivileged NHI"
NHI6_CLOUD_CONFIG = "NHI6:2025 Insecure Cloud Deployment Configurations"
NHI7_LONG_LIVED = "NHI7:2025 Long-Lived Secrets"
NHI8_ISOLATION = "NHI8:2025 Environment Isolation"
NHI9_REUSE = "NHI9:2025 NHI Reuse"
NHI10_HUMAN_USE = "NHI10:2025 Human Use of NHI"

# NIST CSF 2.0 subcategories.
CSF_PR_AA_01 = "PR.AA-01 identities and credentials are managed"
CSF_PR_AA_02 = "PR.AA-02 identities are proofed and bound to credentials"
CSF_PR_AA_03 = "PR.AA-03 users, services and hardware are authenticated"
CSF_PR_AA_04 = "PR.AA-04 identity assertions are protected and verified"
CSF_PR_AA_05 = "PR.AA-05 access permissions enforce least privilege and separation of duties"
CSF_PR_PS_01 = "PR.PS-01 configuration management practices are applied"
CSF_DE_CM_03 = "DE.CM-03 personnel activity and technology usage are monitored"
CSF_ID_AM_08 = "ID.AM-08 systems and assets are managed throughout their life cycles"

# NIST SP 800-207, section 2.1.
ZT_TENET_3 = "SP 800-207 tenet 3: access is granted per session"
ZT_TENET_4 = "SP 800-207 tenet 4: access is decided by dynamic policy"
ZT_TENET_6 = "SP 800-207 tenet 6: authentication and authorization are enforced before access"
ZT_TENET_7 = "SP 800-207 tenet 7: collect information on assets and access to improve security posture"
