//! The Lua scripts that make each multi-key change atomic.

/// Lua shared by the scripts that rewrite a user's active-session list: `rewrite_list`
/// keeps the entries that have not expired by `now` (ms), are not in `drop` and are not
/// duplicates, appends `add` (a `{token, expiresAt}`) when given, sorts by expiry and
/// writes the list back with the TTL of the furthest expiry (deleted when empty); it
/// returns how many entries are left.
macro_rules! rewrite_list_lua {
    () => {
        r#"
local function rewrite_list(key, now, drop, add)
  local raw = redis.call('GET', key)
  local list = {}
  if raw then
    local ok, v = pcall(cjson.decode, raw)
    if ok and type(v) == 'table' then list = v end
  end
  local out, seen = {}, {}
  for _, e in ipairs(list) do
    if type(e) == 'table' and type(e.token) == 'string' then
      local exp = tonumber(e.expiresAt)
      if exp and exp > now and not drop[e.token] and not seen[e.token] then
        seen[e.token] = true
        table.insert(out, {token = e.token, expiresAt = exp})
      end
    end
  end
  if add then table.insert(out, add) end
  table.sort(out, function(a, b) return a.expiresAt < b.expiresAt end)
  if #out == 0 then redis.call('DEL', key); return 0 end
  local parts = {}
  for i, e in ipairs(out) do
    parts[i] = '{"token":' .. cjson.encode(e.token) .. ',"expiresAt":' .. string.format('%.0f', e.expiresAt) .. '}'
  end
  local ttl = math.floor((out[#out].expiresAt - now) / 1000)
  if ttl > 0 then
    redis.call('SET', key, '[' .. table.concat(parts, ',') .. ']', 'EX', ttl)
  else
    redis.call('DEL', key)
  end
  return #out
end
"#
    };
}

/// Rewrites a user's active-session list atomically.
/// KEYS[1] list, KEYS[2] token key (for "add": only added while it exists).
/// ARGV[1] now (ms), ARGV[2] "add" | "remove", ARGV[3] token (add) or tokens (remove),
/// ARGV[4] expiresAt (ms, add).
pub(super) const LIST_SCRIPT: &str = concat!(
    rewrite_list_lua!(),
    r#"
local now = tonumber(ARGV[1])
local drop, add = {}, nil
if ARGV[2] == 'add' then
  drop[ARGV[3]] = true
  local exp = tonumber(ARGV[4])
  if exp > now and (KEYS[2] == nil or redis.call('EXISTS', KEYS[2]) == 1) then
    add = {token = ARGV[3], expiresAt = exp}
  end
else
  for i = 3, #ARGV do drop[ARGV[i]] = true end
end
return rewrite_list(KEYS[1], now, drop, add)
"#
);

/// Replaces sessions in one step: deletes the old token keys, marks each as ended and
/// announces its token's hash, then writes the new token key and its list entry — unless
/// the new session was itself marked ended (a concurrent request whose database
/// transaction came later ended it, and its script ran first): a session the database
/// ended is never written back. Returns 1 when the new session was written, else 0.
/// KEYS[1] list, KEYS[2] new token key, KEYS[3] its ended mark, then for each old session
/// its token key and its ended mark; ARGV[1] now (ms), ARGV[2] channel, ARGV[3] new
/// token, ARGV[4] its expiresAt (ms), ARGV[5] its value, ARGV[6] its TTL (s, ≤ 0: not
/// written), ARGV[7] the marks' TTL (s), then for each old session (same order) its token
/// and its token's SHA-256 hex.
pub(super) const REPLACE_SCRIPT: &str = concat!(
    rewrite_list_lua!(),
    r#"
local now = tonumber(ARGV[1])
local drop = {}
for i = 4, #KEYS, 2 do
  local a = 8 + (i - 4)
  redis.call('DEL', KEYS[i])
  redis.call('SET', KEYS[i + 1], '1', 'EX', ARGV[7])
  drop[ARGV[a]] = true
  redis.call('PUBLISH', ARGV[2], ARGV[a + 1])
end
drop[ARGV[3]] = true
if tonumber(ARGV[6]) <= 0 or redis.call('EXISTS', KEYS[3]) == 1 then
  rewrite_list(KEYS[1], now, drop, nil)
  return 0
end
redis.call('SET', KEYS[2], ARGV[5], 'EX', ARGV[6])
rewrite_list(KEYS[1], now, drop, {token = ARGV[3], expiresAt = tonumber(ARGV[4])})
return 1
"#
);

/// Creates a session under `session.max_per_user` in one step: reads the user's live
/// sessions (list entries whose token key holds a session that is not an impersonation),
/// and with `ended = max(0, live + 1 − max)` (as `store::limit::to_end`) either refuses
/// (nil, nothing written) or deletes the `ended` oldest (by `createdAt`, then token), writes
/// the new token key and rewrites the list; returns the deleted tokens, which the caller
/// announces. The old token keys are `ARGV[8] .. token`: read from the list inside the
/// script, so this needs a single Redis (no cluster), as the list itself does.
/// KEYS[1] list, KEYS[2] new token key; ARGV[1] now (ms), ARGV[2] new token, ARGV[3] its
/// expiresAt (ms), ARGV[4] its value, ARGV[5] its TTL (s), ARGV[6] max, ARGV[7] "1" to
/// refuse, ARGV[8] key prefix.
pub(super) const CAPPED_SCRIPT: &str = concat!(
    rewrite_list_lua!(),
    r#"
local now, max = tonumber(ARGV[1]), tonumber(ARGV[6])
local raw = redis.call('GET', KEYS[1])
local list = {}
if raw then
  local ok, v = pcall(cjson.decode, raw)
  if ok and type(v) == 'table' then list = v end
end
local live, seen = {}, {}
for _, e in ipairs(list) do
  local exp = type(e) == 'table' and tonumber(e.expiresAt)
  if exp and exp > now and type(e.token) == 'string' and e.token ~= ARGV[2] and not seen[e.token] then
    seen[e.token] = true
    local val = redis.call('GET', ARGV[8] .. e.token)
    local ok, v = false, nil
    if val then ok, v = pcall(cjson.decode, val) end
    local s = ok and type(v) == 'table' and type(v.session) == 'table' and v.session or nil
    local imp = s and s.impersonatedBy
    if s and not (imp and imp ~= cjson.null and imp ~= '') then
      local created = type(s.createdAt) == 'string' and s.createdAt or ''
      table.insert(live, {token = e.token, created = created})
    end
  end
end
local ended = math.max(0, #live + 1 - math.max(max, 1))
if ended > 0 and ARGV[7] == '1' then return false end
table.sort(live, function(a, b)
  if a.created ~= b.created then return a.created < b.created end
  return a.token < b.token
end)
local drop, gone = {}, {}
for i = 1, ended do
  redis.call('DEL', ARGV[8] .. live[i].token)
  drop[live[i].token] = true
  gone[i] = live[i].token
end
drop[ARGV[2]] = true
redis.call('SET', KEYS[2], ARGV[4], 'EX', ARGV[5])
rewrite_list(KEYS[1], now, drop, {token = ARGV[2], expiresAt = tonumber(ARGV[3])})
return gone
"#
);

/// Deletes token keys and their list entries in one step, and announces each token's hash.
/// KEYS[1] list, KEYS[2..] token keys; ARGV[1] now, ARGV[2] channel, then for each key (same
/// order) its token and its token's SHA-256 hex.
pub(super) const REVOKE_SCRIPT: &str = r#"
local deleted = 0
for i = 2, #KEYS do
  deleted = deleted + redis.call('DEL', KEYS[i])
  redis.call('PUBLISH', ARGV[2], ARGV[2 * i])
end
local raw = redis.call('GET', KEYS[1])
if raw then
  local ok, list = pcall(cjson.decode, raw)
  if ok and type(list) == 'table' then
    local drop = {}
    for i = 3, #ARGV, 2 do drop[ARGV[i]] = true end
    local now = tonumber(ARGV[1])
    local parts, last = {}, nil
    for _, e in ipairs(list) do
      local exp = type(e) == 'table' and tonumber(e.expiresAt)
      if exp and exp > now and type(e.token) == 'string' and not drop[e.token] then
        table.insert(parts, '{"token":' .. cjson.encode(e.token) .. ',"expiresAt":' .. string.format('%.0f', exp) .. '}')
        if not last or exp > last then last = exp end
      end
    end
    if #parts == 0 then
      redis.call('DEL', KEYS[1])
    else
      local ttl = math.floor((last - now) / 1000)
      if ttl > 0 then
        redis.call('SET', KEYS[1], '[' .. table.concat(parts, ',') .. ']', 'EX', ttl)
      else
        redis.call('DEL', KEYS[1])
      end
    end
  end
end
return deleted
"#;

/// Sets a key only if it still holds the value read before (compare-and-set).
/// KEYS[1]; ARGV[1] expected, ARGV[2] new value, ARGV[3] TTL (s).
pub(super) const CAS_SCRIPT: &str = r#"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
  return 1
end
return 0
"#;
