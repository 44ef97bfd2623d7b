-- Who changed what: every successful change through the API (and every key reveal), written
-- by the route table's check, so a new route cannot be left out.
CREATE TABLE audit (
    id         BIGSERIAL PRIMARY KEY,
    at         BIGINT NOT NULL,
    actor      TEXT NOT NULL,
    action     TEXT NOT NULL, -- method and route, e.g. DELETE /api/v1/keys/{name}
    target     TEXT NOT NULL, -- the path as requested, e.g. /api/v1/keys/ops
    detail     TEXT,          -- what the handler adds (the workflow and version applied)
    status     BIGINT NOT NULL
);
CREATE INDEX audit_by_time ON audit (at);
