-- 001: the tables as the original (Python) single-job dashboard had them.
-- A database it created already has them (user_version 0): nothing changes.
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    tipo TEXT NOT NULL,
    params TEXT,
    status TEXT NOT NULL DEFAULT 'pending',
    created_at TEXT NOT NULL,
    started_at TEXT,
    finished_at TEXT,
    error_message TEXT,
    logs TEXT DEFAULT ''
);
CREATE TABLE IF NOT EXISTS sistemas (
    id TEXT PRIMARY KEY,
    nome TEXT NOT NULL,
    descricao TEXT,
    ativo INTEGER NOT NULL DEFAULT 1,
    status TEXT NOT NULL DEFAULT 'IDLE',
    progresso INTEGER NOT NULL DEFAULT 0,
    mensagem TEXT,
    ultima_execucao TEXT
);
CREATE TABLE IF NOT EXISTS users (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    username TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    role TEXT NOT NULL DEFAULT 'viewer',
    created_at TEXT NOT NULL
);
