-- Reporter receipts list the accesses to one vault record: index events by record.
ALTER TABLE audit_events ADD COLUMN record TEXT;
CREATE INDEX audit_events_by_record ON audit_events(record);
