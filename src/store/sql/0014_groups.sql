-- latchkey schema version 14: groups become objects with a stable id, and everything that
-- names a group or a user stores its id, so a rename keeps rules and clients pointing at the
-- same group or person, and a newcomer who takes an old name gets nothing the old name had.
-- Never edit; add 0015.

-- AUTOINCREMENT: a removed group's id is never given to a new group, so a rule or client
-- still naming it admits nobody instead of the new group.
CREATE TABLE groups (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    name        TEXT NOT NULL UNIQUE,
    description TEXT NOT NULL DEFAULT '',
    created_at  INTEGER NOT NULL
) STRICT;

-- Every group named anywhere today becomes one.
INSERT INTO groups (name, created_at)
    SELECT name, CAST(strftime('%s', 'now') AS INTEGER) FROM (
        SELECT group_name AS name FROM user_groups
        UNION SELECT subject FROM rules WHERE action = 'allow_group' AND subject IS NOT NULL
        UNION SELECT j.value FROM clients, json_each(clients.allowed_groups) AS j
    ) ORDER BY name;

CREATE TABLE user_groups_new (
    user_id  TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    group_id INTEGER NOT NULL REFERENCES groups (id) ON DELETE CASCADE,
    PRIMARY KEY (user_id, group_id)
) STRICT, WITHOUT ROWID;
INSERT INTO user_groups_new (user_id, group_id)
    SELECT ug.user_id, g.id FROM user_groups AS ug JOIN groups AS g ON g.name = ug.group_name;
DROP TABLE user_groups;
ALTER TABLE user_groups_new RENAME TO user_groups;
CREATE INDEX user_groups_group ON user_groups (group_id);

-- rules.subject: the group's id (as text) for allow_group, the user's `sub` for allow_user. A
-- rule naming a user who does not exist keeps the old name, which is no user's `sub`: it
-- admitted nobody and still does.
UPDATE rules SET subject = (SELECT CAST(g.id AS TEXT) FROM groups AS g WHERE g.name = rules.subject)
    WHERE action = 'allow_group';
UPDATE rules SET subject = COALESCE(
        (SELECT u.id FROM users AS u WHERE u.username_key = lower(rules.subject)), subject)
    WHERE action = 'allow_user';

-- clients.allowed_groups: a JSON array of group ids.
UPDATE clients SET allowed_groups = (
    SELECT json_group_array(g.id) FROM json_each(clients.allowed_groups) AS j
    JOIN groups AS g ON g.name = j.value);

-- What the caches resolved from a group's name must reload when it changes or goes.
CREATE TRIGGER groups_upd AFTER UPDATE OF name ON groups BEGIN UPDATE revisions SET rev = rev + 1 WHERE name IN ('users', 'rules', 'clients'); END;
CREATE TRIGGER groups_del AFTER DELETE ON groups BEGIN UPDATE revisions SET rev = rev + 1 WHERE name IN ('users', 'rules', 'clients'); END;
