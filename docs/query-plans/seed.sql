-- Realistic volume for EXPLAIN: 50k links over two pairs, 200k sync-log rows over 30 days,
-- appended in time order; conflicts, held deletes, receipts and a few leases.
\set ON_ERROR_STOP on
INSERT INTO entity_link (id, pair, entity_type, crm_id, finance_id, state, sync_status,
  crm_checksum, finance_checksum, crm_version, finance_version, base_snapshot,
  last_transaction_id, last_synced_at, last_direction, created_at, updated_at,
  label_name, label_email, label_number, attempts)
SELECT gen_random_uuid(),
  CASE WHEN n % 5 = 0 THEN 'globex' ELSE 'acme' END,
  CASE WHEN n % 10 < 7 THEN 'customer' ELSE 'invoice' END,
  'c' || n, 'f-' || md5(n::text),
  'linked',
  CASE WHEN n % 100 < 95 THEN 'synced' WHEN n % 100 < 97 THEN 'failed'
       WHEN n % 100 < 99 THEN 'retrying' ELSE 'conflict' END,
  md5('c' || n), md5('f' || n), (1700000000 + n)::text, (1700000000 + n)::text,
  jsonb_build_object('name', 'Person ' || n, 'email', 'person' || n || '@example.com',
                     'phone', '+44 ' || n),
  gen_random_uuid(), now() - (n % 43200) * interval '1 minute', 'crm_to_finance',
  now() - interval '60 days' + n * interval '1 minute',
  now() - (n % 43200) * interval '1 minute',
  CASE WHEN n % 10 < 7 THEN 'Person ' || n END,
  CASE WHEN n % 10 < 7 THEN 'person' || n || '@example.com' END,
  CASE WHEN n % 10 >= 7 THEN 'INV-' || n END, 0
FROM generate_series(1, 50000) AS n;

INSERT INTO sync_log (id, transaction_id, link_id, pair, entity_type, source_system,
  external_id, direction, trigger, outcome, detail, source_snapshot, target_before,
  attempt, duration_ms, created_at)
SELECT gen_random_uuid(), gen_random_uuid(),
  CASE WHEN s % 10 = 0 THEN NULL ELSE l.id END,
  l.pair, l.entity_type,
  CASE WHEN s % 2 = 0 THEN 'crm' ELSE 'finance' END,
  CASE WHEN s % 2 = 0 THEN l.crm_id ELSE l.finance_id END,
  'crm_to_finance', 'webhook',
  CASE WHEN s % 100 < 45 THEN 'skipped' WHEN s % 100 < 70 THEN 'updated'
       WHEN s % 100 < 80 THEN 'created' WHEN s % 100 < 90 THEN 'received'
       WHEN s % 100 < 94 THEN 'retrying' WHEN s % 100 < 97 THEN 'failed'
       WHEN s % 100 < 99 THEN 'conflict' ELSE 'blocked' END,
  'detail of entry ' || s,
  l.base_snapshot, l.base_snapshot,
  1, 40 + s % 200,
  now() - (s % 43200) * interval '1 minute' - (s % 60) * interval '1 second'
FROM generate_series(1, 200000) AS s
JOIN LATERAL (SELECT * FROM entity_link WHERE crm_id = 'c' || (1 + (s * 7919) % 50000)) l ON true
-- Appended in time order, as the log is written.
ORDER BY 16;

INSERT INTO conflict (id, link_id, pair, entity_type, field, crm_value, finance_value,
  base_value, policy, resolution, status, transaction_id, created_at, resolved_at,
  decided_by, applied_at)
SELECT gen_random_uuid(), l.id, l.pair, l.entity_type, 'phone',
  to_jsonb('crm ' || n), to_jsonb('finance ' || n), to_jsonb('base'::text), 'last_write_wins',
  CASE WHEN n % 100 < 80 THEN 'finance' END,
  CASE WHEN n % 100 < 80 THEN 'resolved' WHEN n % 100 < 90 THEN 'open'
       WHEN n % 100 < 95 THEN 'withdrawn' ELSE 'decided' END,
  gen_random_uuid(), now() - n * interval '10 minutes',
  CASE WHEN n % 100 < 80 THEN now() END, CASE WHEN n % 100 < 80 THEN 'policy' END,
  CASE WHEN n % 100 < 80 THEN now() END
FROM generate_series(1, 3000) AS n
JOIN entity_link l ON l.crm_id = 'c' || (n * 13);

INSERT INTO pending_delete (id, link_id, pair, entity_type, source_system, external_id,
  status, created_at)
SELECT gen_random_uuid(), l.id, l.pair, l.entity_type, 'crm', l.crm_id,
  CASE WHEN n % 4 = 0 THEN 'pending' ELSE 'approved' END, now() - n * interval '1 hour'
FROM generate_series(1, 500) AS n JOIN entity_link l ON l.crm_id = 'c' || (n * 97);

INSERT INTO webhook_receipt (id, pair, system, delivery_key, received_at)
SELECT gen_random_uuid(), 'acme', CASE WHEN n % 2 = 0 THEN 'crm' ELSE 'finance' END,
  'delivery-' || n, now() - (n % 43200) * interval '1 minute'
FROM generate_series(1, 100000) AS n;

INSERT INTO record_lease (key, holder, expires_at)
SELECT 'acme/customer/crm:c' || n, gen_random_uuid(), now() + interval '30 seconds'
FROM generate_series(1, 50) AS n;

VACUUM ANALYZE;
