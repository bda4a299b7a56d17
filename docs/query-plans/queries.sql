\set QUIET on
\pset pager off
SELECT id AS link, finance_id AS fid FROM entity_link WHERE crm_id = 'c4242' \gset
SELECT id AS clink FROM conflict WHERE status = 'open' LIMIT 1 \gset
SELECT link_id AS dlink FROM pending_delete LIMIT 1 \gset
\echo '### Q1 find_link by (pair, entity, crm_id)'
EXPLAIN (ANALYZE, COSTS OFF, SUMMARY OFF) SELECT * FROM entity_link WHERE pair = 'acme' AND entity_type = 'customer' AND crm_id = 'c4242' LIMIT 1;
\echo '### Q2 find_link by (pair, entity, finance_id)'
EXPLAIN (ANALYZE, COSTS OFF, SUMMARY OFF) SELECT * FROM entity_link WHERE pair = 'acme' AND entity_type = 'customer' AND finance_id = :'fid' LIMIT 1;
\echo '### Q3 find_links: 100 ids on one side'
EXPLAIN (ANALYZE, COSTS OFF, SUMMARY OFF) SELECT * FROM entity_link WHERE pair = 'acme' AND entity_type = 'customer' AND crm_id IN (SELECT 'c' || n FROM generate_series(1000, 1099) n);
\echo '### Q4 active conflicts of a link'
EXPLAIN (ANALYZE, COSTS OFF, SUMMARY OFF) SELECT * FROM conflict WHERE link_id = :'clink' AND status IN ('open', 'decided');
\echo '### Q5 held deletes of a link'
EXPLAIN (ANALYZE, COSTS OFF, SUMMARY OFF) SELECT * FROM pending_delete WHERE link_id = :'dlink' ORDER BY created_at ASC;
BEGIN;
\echo '### Q6 take a record lease, and the revision of its link'
EXPLAIN (ANALYZE, COSTS OFF, SUMMARY OFF) INSERT INTO record_lease (key, holder, expires_at) VALUES ('acme/customer/crm:c4242', gen_random_uuid(), now() + make_interval(secs => 30)) ON CONFLICT (key) DO UPDATE SET holder = EXCLUDED.holder, expires_at = EXCLUDED.expires_at WHERE record_lease.expires_at < now() OR record_lease.holder = EXCLUDED.holder RETURNING (SELECT revision FROM entity_link WHERE pair = 'acme' AND entity_type = 'customer' AND crm_id = 'c4242') AS revision;
\echo '### Q7 give a lease back'
EXPLAIN (ANALYZE, COSTS OFF, SUMMARY OFF) DELETE FROM record_lease WHERE key = 'acme/customer/crm:c4242' AND holder = '0190a000-0000-7000-8000-000000000003';
\echo '### Q8 renew this process''s leases'
EXPLAIN (ANALYZE, COSTS OFF, SUMMARY OFF) UPDATE record_lease SET expires_at = now() + make_interval(secs => 30) WHERE holder = '0190a000-0000-7000-8000-000000000003' AND key IN ('acme/customer/crm:c1', 'acme/customer/crm:c2', 'acme/customer/crm:c3');
\echo '### Q9 record receipts (a batch)'
EXPLAIN (ANALYZE, COSTS OFF, SUMMARY OFF) INSERT INTO webhook_receipt (id, pair, system, delivery_key, received_at) VALUES (gen_random_uuid(), 'acme', 'crm', 'delivery-2', now()), (gen_random_uuid(), 'acme', 'crm', 'delivery-new', now()) ON CONFLICT (pair, system, delivery_key) DO NOTHING RETURNING delivery_key;
\echo '### Q10 forget receipts'
EXPLAIN (ANALYZE, COSTS OFF, SUMMARY OFF) DELETE FROM webhook_receipt WHERE pair = 'acme' AND system = 'crm' AND delivery_key IN ('delivery-2', 'delivery-4');
\echo '### Q11 save a link (upsert by id)'
EXPLAIN (ANALYZE, COSTS OFF, SUMMARY OFF) INSERT INTO entity_link (id, pair, entity_type, crm_id, finance_id, state, sync_status, created_at, updated_at, attempts) VALUES (:'link', 'acme', 'customer', 'c4242', :'fid', 'linked', 'synced', now(), now(), 0) ON CONFLICT (id) DO UPDATE SET sync_status = EXCLUDED.sync_status, updated_at = EXCLUDED.updated_at;
\echo '### Q12 set a failed link''s status'
EXPLAIN (ANALYZE, COSTS OFF, SUMMARY OFF) UPDATE entity_link SET sync_status = 'retrying', attempts = 1, updated_at = now() WHERE id = :'link';
\echo '### Q13 append to the sync log'
EXPLAIN (ANALYZE, COSTS OFF, SUMMARY OFF) INSERT INTO sync_log (id, transaction_id, link_id, pair, entity_type, source_system, external_id, trigger, outcome, attempt, duration_ms, created_at) VALUES (gen_random_uuid(), gen_random_uuid(), :'link', 'acme', 'customer', 'crm', 'c4242', 'webhook', 'updated', 1, 10, now());
\echo '### Q14 withdraw conflicts'
EXPLAIN (ANALYZE, COSTS OFF, SUMMARY OFF) UPDATE conflict SET status = 'withdrawn' WHERE id IN ('0190a000-0000-7000-8000-000000000001', '0190a000-0000-7000-8000-000000000002') AND status IN ('open', 'decided');
ROLLBACK;
\echo '### Q15 record history (by link, both sides, and the id before the link)'
EXPLAIN (ANALYZE, COSTS OFF, SUMMARY OFF) SELECT * FROM sync_log WHERE pair = 'acme' AND entity_type = 'customer' AND ((source_system = 'crm' AND external_id = 'c4242') OR link_id = :'link' OR (source_system = 'crm' AND external_id = 'c4242') OR (source_system = 'finance' AND external_id = :'fid')) ORDER BY created_at DESC, id DESC LIMIT 50;
\echo '### Q16 sync log, newest first (dashboard, no filter)'
EXPLAIN (ANALYZE, COSTS OFF, SUMMARY OFF) SELECT * FROM sync_log ORDER BY created_at DESC, id DESC LIMIT 50;
\echo '### Q17 sync log of a time range, a page (replay job)'
EXPLAIN (ANALYZE, COSTS OFF, SUMMARY OFF) SELECT * FROM sync_log WHERE pair = 'acme' AND created_at >= now() - interval '2 days' AND created_at < now() - interval '1 day' ORDER BY created_at DESC, id DESC LIMIT 1000 OFFSET 1000;
\echo '### Q18 failures, newest first'
EXPLAIN (ANALYZE, COSTS OFF, SUMMARY OFF) SELECT * FROM sync_log WHERE outcome = 'failed' ORDER BY created_at DESC, id DESC LIMIT 50;
\echo '### Q19 outcomes of the last 24 hours (stats)'
EXPLAIN (ANALYZE, COSTS OFF, SUMMARY OFF) SELECT outcome, count(id) AS count FROM sync_log WHERE created_at >= now() - interval '24 hours' GROUP BY outcome;
\echo '### Q20 links by status (metrics scrape)'
EXPLAIN (ANALYZE, COSTS OFF, SUMMARY OFF) SELECT sync_status, count(id) AS n FROM entity_link GROUP BY sync_status;
\echo '### Q21 conflicts held for a person (metrics scrape)'
EXPLAIN (ANALYZE, COSTS OFF, SUMMARY OFF) SELECT count(*) FROM conflict WHERE status = 'open';
\echo '### Q22 failed and retrying links (dashboard)'
EXPLAIN (ANALYZE, COSTS OFF, SUMMARY OFF) SELECT * FROM entity_link WHERE sync_status IN ('failed', 'retrying') ORDER BY updated_at DESC LIMIT 1000;
\echo '### Q23 find a record by text (dashboard search)'
EXPLAIN (ANALYZE, COSTS OFF, SUMMARY OFF) SELECT * FROM entity_link WHERE crm_id = 'person4242@example.com' OR finance_id = 'person4242@example.com' OR label_email = 'person4242@example.com' OR label_number = 'person4242@example.com' OR lower(label_name) LIKE '%person4242@example.com%' ESCAPE '\' ORDER BY updated_at DESC LIMIT 20;
\echo '### Q24 conflicts, newest first (dashboard)'
EXPLAIN (ANALYZE, COSTS OFF, SUMMARY OFF) SELECT * FROM conflict ORDER BY created_at DESC, id DESC LIMIT 50;
\echo '### Q25 deletes held for approval'
EXPLAIN (ANALYZE, COSTS OFF, SUMMARY OFF) SELECT * FROM pending_delete WHERE status = 'pending' ORDER BY created_at ASC LIMIT 200;
