
3
in_floatPlaceholder*
dtype0*
shape:
(
	out_floatIdentityin_float*
T0
4
	in_doublePlaceholder*
dtype0*
shape:
*

out_doubleIdentity	in_double*
T0
2
in_int8Placeholder*
dtype0*
shape:
&
out_int8Identityin_int8*
T0
3
in_int16Placeholder*
dtype0*
shape:
(
	out_int16Identityin_int16*
T0
3
in_int32Placeholder*
dtype0*
shape:
(
	out_int32Identityin_int32*
T0
3
in_int64Placeholder*
dtype0	*
shape:
(
	out_int64Identityin_int64*
T0	
3
in_uint8Placeholder*
dtype0*
shape:
(
	out_uint8Identityin_uint8*
T0
4
	in_uint16Placeholder*
dtype0*
shape:
*

out_uint16Identity	in_uint16*
T0
2
in_boolPlaceholder*
dtype0
*
shape:
&
out_boolIdentityin_bool*
T0


not_bool
LogicalNotin_bool
#
	neg_int64Negin_int64*
T0	