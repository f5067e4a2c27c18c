/**
 * A fixed-window budget in Lua, for the script that charges one (CREATE): INCR, and the
 * first charge starts the window's clock. Returns false within `limit`, else the window's ms left.
 */
export const LUA_BUDGET = `
local function overBudget(key, limit, windowMs)
  local n = redis.call('INCR', key)
  if n == 1 then redis.call('PEXPIRE', key, windowMs) end
  if n <= limit then return false end
  return redis.call('PTTL', key)
end
`;
