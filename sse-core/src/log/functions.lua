#!lua name=sse_examples
-- The sse-examples function library: every step of the shared event log that must be atomic.
-- Loaded with FUNCTION LOAD REPLACE by every instance at start (and again if Redis lost it).
--
-- Keys: the stream KEY:events (entry id 0-N is event id N, fields e = event name, d = data),
-- the hash KEY:meta (replay_capacity, tick), the string KEY:lease (the clock holder's
-- instance id, with an expiry), KEY:once:<Idempotency-Key> (digest, id, clients) and
-- KEY:recovering (set for a moment after the log was found to have lost its data).

-- How long nothing is published once the log is found to have lost its data: time for every
-- instance's reader to raise the stream's last id to what it saw (sse_floor), so that no id is
-- given twice. Readers call sse_floor at least once a second, and at once after reconnecting.
local RECOVERY_MS = 2000

-- Fails the call (the caller answers 503) while the log recovers from data loss. The loss
-- shows as KEY:meta missing: every instance writes it at start, and only a loss removes it.
local function ensure_intact(meta, recovering, capacity)
  if redis.call('EXISTS', recovering) == 1 then
    error({err = 'RECOVERING the event log lost its data; nothing is published for a moment'})
  end
  if redis.call('EXISTS', meta) == 0 then
    redis.call('HSET', meta, 'replay_capacity', capacity)
    redis.call('SET', recovering, '1', 'PX', RECOVERY_MS)
    error({err = 'RECOVERING the event log lost its data; nothing is published for a moment'})
  end
end

-- The newest id the stream ever gave (its last-generated-id), 0 when there is no stream.
local function newest(stream)
  if redis.call('EXISTS', stream) == 0 then
    return 0
  end
  local info = redis.call('XINFO', 'STREAM', stream)
  for i = 1, #info, 2 do
    if info[i] == 'last-generated-id' then
      return tonumber(string.match(info[i + 1], '^%d+%-(%d+)$'))
    end
  end
  return 0
end

-- Appends with the next id, and never at or below `floor` (the highest id the calling instance
-- has seen: a log that lost data must not give an id twice).
local function append(stream, meta, recovering, capacity, floor, name, data)
  ensure_intact(meta, recovering, capacity)
  local id = '0-*'
  if newest(stream) < floor then
    id = string.format('0-%d', floor + 1)
  end
  local given = redis.call('XADD', stream, 'MAXLEN', '=', capacity, id, 'e', name, 'd', data)
  return tonumber(string.match(given, '^0%-(%d+)$'))
end

-- KEYS: meta. ARGV: replay_capacity. Returns the capacity the log was created with.
redis.register_function('sse_init', function(keys, args)
  redis.call('HSETNX', keys[1], 'replay_capacity', args[1])
  return redis.call('HGET', keys[1], 'replay_capacity')
end)

-- KEYS: stream, meta, recovering. ARGV: capacity, floor, name, data. Returns the id.
redis.register_function('sse_publish', function(keys, args)
  return append(keys[1], keys[2], keys[3], args[1], tonumber(args[2]), args[3], args[4])
end)

-- KEYS: stream, meta, recovering, once. ARGV: capacity, floor, name, data, digest, clients, ttl_ms.
-- Returns {'new', id, clients}, {'repeat', id, clients} or {'conflict'}.
redis.register_function('sse_publish_once', function(keys, args)
  local seen = redis.call('HMGET', keys[4], 'digest', 'id', 'clients')
  if seen[1] then
    if seen[1] == args[5] then
      return {'repeat', tonumber(seen[2]), tonumber(seen[3])}
    end
    return {'conflict'}
  end
  local id = append(keys[1], keys[2], keys[3], args[1], tonumber(args[2]), args[3], args[4])
  redis.call('HSET', keys[4], 'digest', args[5], 'id', id, 'clients', args[6])
  redis.call('PEXPIRE', keys[4], args[7])
  return {'new', id, tonumber(args[6])}
end)

-- Takes the clock's lease when it is free, or renews it for its holder.
-- KEYS: lease. ARGV: instance, ttl_ms. Returns 1 when the caller holds it.
local function lease(key, instance, ttl)
  local holder = redis.call('GET', key)
  if holder == false then
    redis.call('SET', key, instance, 'PX', ttl)
    return 1
  end
  if holder == instance then
    redis.call('PEXPIRE', key, ttl)
    return 1
  end
  return 0
end

redis.register_function('sse_lease', function(keys, args)
  return lease(keys[1], args[1], args[2])
end)

-- Publishes the next tick if the caller holds the lease, in one step with the check, so that
-- an instance that lost the lease (paused, cut off) can never publish one.
-- KEYS: stream, meta, recovering, lease. ARGV: capacity, floor, instance, ttl_ms, time.
-- Returns {id, K}, or false when another instance holds the clock.
redis.register_function('sse_tick', function(keys, args)
  if lease(keys[4], args[3], args[4]) == 0 then
    return false
  end
  ensure_intact(keys[2], keys[3], args[1])
  local k = redis.call('HINCRBY', keys[2], 'tick', 1)
  local data = string.format('{"tick":%d,"time":"%s"}', k, args[5])
  return {append(keys[1], keys[2], keys[3], args[1], tonumber(args[2]), 'tick', data), k}
end)

-- After data loss: moves the stream's last id up to `floor` (creating the stream if Redis
-- came back empty), so that no id is given twice; a loss noticed here starts the recovery
-- pause too. KEYS: stream, meta, recovering. ARGV: floor, capacity. Returns the newest id.
redis.register_function('sse_floor', function(keys, args)
  local floor = tonumber(args[1])
  if redis.call('EXISTS', keys[2]) == 0 then
    redis.call('HSET', keys[2], 'replay_capacity', args[2])
    if floor > 0 then
      redis.call('SET', keys[3], '1', 'PX', RECOVERY_MS)
    end
  end
  if newest(keys[1]) >= floor or floor == 0 then
    return newest(keys[1])
  end
  local id = string.format('0-%d', floor)
  if redis.call('EXISTS', keys[1]) == 0 then
    redis.call('XADD', keys[1], id, 'e', 'floor', 'd', '')
    redis.call('XDEL', keys[1], id)
  else
    redis.call('XSETID', keys[1], id)
  end
  return floor
end)

-- What is held after N: {oldest or false, newest, entries}, the entries being those with
-- id > N, or all of them when N is newer than the newest. KEYS: stream. ARGV: N.
redis.register_function{
  function_name = 'sse_held_after',
  flags = {'no-writes'},
  callback = function(keys, args)
    local last = newest(keys[1])
    local first = redis.call('XRANGE', keys[1], '-', '+', 'COUNT', 1)
    local oldest = false
    if #first > 0 then
      oldest = tonumber(string.match(first[1][1], '^0%-(%d+)$'))
    end
    local n = tonumber(args[1])
    local from = '-'
    if n ~= nil and n <= last then
      from = string.format('(0-%d', n)
    end
    return {oldest, last, redis.call('XRANGE', keys[1], from, '+')}
  end
}
