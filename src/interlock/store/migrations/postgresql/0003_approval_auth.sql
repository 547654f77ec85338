-- How each approver authenticated: `token` (API bearer credential), `session` (web inbox) or `local`
-- (the CLI or an in-process gate). `local` is the weakest claim, so older approvals are not overstated.
ALTER TABLE approvals ADD COLUMN auth text NOT NULL DEFAULT 'local' CHECK (auth IN ('token', 'session', 'local'));
