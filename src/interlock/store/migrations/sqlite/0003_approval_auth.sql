-- How each approver authenticated: `token` (API bearer credential), `session` (web inbox) or `local`
-- (the CLI or an in-process gate). Approvals recorded before this column existed were all local or
-- unknown; `local` is the weakest claim, so they are not overstated in a grant.
ALTER TABLE approvals ADD COLUMN auth TEXT NOT NULL DEFAULT 'local' CHECK (auth IN ('token', 'session', 'local'))
