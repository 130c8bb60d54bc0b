
,
aPlaceholder*
dtype0*
shape:

yMulamissing*
T0