CREATE TABLE ledger (id INTEGER PRIMARY KEY, amount INTEGER NOT NULL);
CREATE TABLE ledger_notes (id INTEGER PRIMARY KEY,
                           ledger_id INTEGER NOT NULL REFERENCES ledger (id), note TEXT);
