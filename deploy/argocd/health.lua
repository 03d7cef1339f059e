-- Argo CD health of an AtomicAgent or an AtomicPipeline, from the operator's status.
-- Install it for both kinds (docs/gitops.md): resource.customizations.health.atomicagents.io_AtomicAgent
-- and resource.customizations.health.atomicagents.io_AtomicPipeline in argocd-cm.
local hs = {status = "Progressing", message = "Waiting for the operator to report status"}
if obj.status == nil or obj.status.conditions == nil then
  return hs
end
local generation = obj.metadata.generation
if generation ~= nil and obj.status.observedGeneration ~= generation then
  hs.message = "Waiting for the operator to observe generation " .. tostring(generation)
  return hs
end
local by_type = {}
for _, condition in ipairs(obj.status.conditions) do
  by_type[condition.type] = condition
end
local function describe(condition)
  local text = condition.reason or condition.type
  if condition.message ~= nil and condition.message ~= "" then
    text = text .. ": " .. condition.message
  end
  return text
end
-- A problem the operator cannot fix by waiting: a bad spec, a missing Secret or agent,
-- an edge whose schemas do not fit, a rollout past its deadline.
for _, kind in ipairs({"Stalled", "Degraded"}) do
  local condition = by_type[kind]
  if condition ~= nil and condition.status == "True" then
    hs.status = "Degraded"
    hs.message = describe(condition)
    return hs
  end
end
local compatible = by_type["SchemasCompatible"]
if compatible ~= nil and compatible.status == "False" then
  hs.status = "Degraded"
  hs.message = describe(compatible)
  return hs
end
local ready = by_type["Ready"]
if ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = describe(ready)
  return hs
end
if ready ~= nil then
  hs.message = describe(ready)
end
return hs
