
,
aPlaceholder*
dtype0*
shape:
(
yNoSuchOpForRedisAITestsa*
T0