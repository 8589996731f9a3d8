-- The sticky split written as an Envoy Lua filter, the way an operator without canary-mesh
-- would write it: the key from one header, murmur3_x86_32(key, seed) % 10000, the chosen
-- cluster in the route header (the front routes with `cluster_header`). `make bench` runs it as
-- setup (f) beside the canary filter; an end-to-end test (tests/tests/lua_split.rs) checks that
-- it routes every key exactly as the filter does.
--
-- Envoy's Lua is LuaJIT (Lua 5.1): no native 32-bit integers, so the hash runs on LuaJIT's
-- `bit` library (32-bit signed results) and multiplies in two 16-bit halves to stay exact in
-- doubles.

local KEY_HEADER = "x-user-id"
local ROUTE_HEADER = "x-canary-cluster"
local SEED = 0
-- Buckets [0, CANARY_BUCKETS) go to the canary: 1000 of 10000 is 10 %.
local CANARY_BUCKETS = 1000
local CANARY_CLUSTER = "app-v2"
local STABLE_CLUSTER = "app-v1"

local bit = require("bit")
local band, bor, bxor, rol, rshift, lshift, tobit =
  bit.band, bit.bor, bit.bxor, bit.rol, bit.rshift, bit.lshift, bit.tobit
local byte = string.byte

-- a * b modulo 2^32 (as a signed 32-bit number): both products stay below 2^53.
local function mul32(a, b)
  local low = band(a, 0xffff) * b
  local high = lshift(tobit(rshift(a, 16) * b), 16)
  return tobit(low + high)
end

local C1 = tobit(0xcc9e2d51)
local C2 = tobit(0x1b873593)

local function murmur3_x86_32(key, seed)
  local h = tobit(seed)
  local len = #key
  local blocks = len - len % 4
  for i = 1, blocks, 4 do
    local b0, b1, b2, b3 = byte(key, i, i + 3)
    local k = bor(b0, lshift(b1, 8), lshift(b2, 16), lshift(b3, 24))
    k = mul32(rol(mul32(k, C1), 15), C2)
    h = bxor(h, k)
    h = tobit(mul32(rol(h, 13), 5) + tobit(0xe6546b64))
  end
  local rest = len - blocks
  if rest > 0 then
    local k = 0
    for j = rest, 1, -1 do
      k = bor(lshift(k, 8), byte(key, blocks + j))
    end
    k = mul32(rol(mul32(k, C1), 15), C2)
    h = bxor(h, k)
  end
  h = bxor(h, len)
  h = bxor(h, rshift(h, 16))
  h = mul32(h, tobit(0x85ebca6b))
  h = bxor(h, rshift(h, 13))
  h = mul32(h, tobit(0xc2b2ae35))
  h = bxor(h, rshift(h, 16))
  -- As an unsigned 32-bit number.
  if h < 0 then
    h = h + 4294967296
  end
  return h
end

function envoy_on_request(request_handle)
  local headers = request_handle:headers()
  -- The first value, as the canary filter reads it (`get` would join repeated headers).
  local key = headers:getAtIndex(KEY_HEADER, 0)
  local bucket
  if key ~= nil and key ~= "" then
    bucket = murmur3_x86_32(key, SEED) % 10000
  else
    -- No key: a random bucket, as the filter's `when_missing: random`.
    bucket = math.random(0, 9999)
  end
  local cluster = STABLE_CLUSTER
  if bucket < CANARY_BUCKETS then
    cluster = CANARY_CLUSTER
  end
  headers:replace(ROUTE_HEADER, cluster)
  -- The route was picked before this filter ran; pick it again on the new header.
  request_handle:clearRouteCache()
end
