
,
sPlaceholder*
dtype0*
shape:

outIdentitys*
T0
&
lenStringLengths*
unitBYTE