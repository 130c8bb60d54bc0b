
/
dataPlaceholder*
dtype0*
shape:
 

compressedDecodeBase64data
@
textDecodeCompressed
compressed*
compression_typeZLIB
*
sizeStringLengthtext*
unitBYTE