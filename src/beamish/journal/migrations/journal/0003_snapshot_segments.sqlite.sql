-- Snapshots stop repeating the conversation: format 1 (rows written before this version) holds the
-- whole message list; format 2 holds only the messages added since the snapshot at prev_seq (-1: since
-- the start), so a run's snapshots together store each message once.
ALTER TABLE snapshots ADD COLUMN format INTEGER NOT NULL DEFAULT 1;
ALTER TABLE snapshots ADD COLUMN prev_seq INTEGER;
