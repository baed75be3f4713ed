"""Optional batteries built on StarModel's public pieces; each lives in a package of its own
(``starmodel.contrib.auth``: users, sign-in pages and permissions)."""
