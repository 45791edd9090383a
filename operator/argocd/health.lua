-- Argo CD health check for chmcp.dev/McpMultiCluster (resource.customizations).
-- Healthy / Progressing / Degraded from the operator's own conditions:
--   the operator has not seen this generation yet       -> Progressing
--   Stalled=True or Degraded=True (the spec or a Secret must change, or the rollout
--   gave up)                                              -> Degraded, with its message
--   Ready=True                                            -> Healthy
--   anything else (pods rolling)                          -> Progressing
-- Tested by operator/tests/argocd_health.rs with lua5.4 against statuses the operator
-- itself produces.
local hs = {status = "Progressing", message = "Waiting for the chmcp operator"}
if obj.status == nil then
  return hs
end
local generation = obj.metadata and obj.metadata.generation
if generation ~= nil and (obj.status.observedGeneration == nil or obj.status.observedGeneration < generation) then
  hs.message = "Waiting for the chmcp operator to observe generation " .. tostring(generation)
  return hs
end
local found = {}
for _, c in ipairs(obj.status.conditions or {}) do
  found[c.type] = c
end
for _, kind in ipairs({"Stalled", "Degraded"}) do
  local c = found[kind]
  if c ~= nil and c.status == "True" then
    hs.status = "Degraded"
    hs.message = (c.reason or kind) .. ": " .. (c.message or "")
    return hs
  end
end
local ready = found["Ready"]
if ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = ready.message or "Ready"
  return hs
end
if ready ~= nil then
  hs.message = (ready.reason or "NotReady") .. ": " .. (ready.message or "")
end
return hs
