# Mapping of libnghttp2 return codes to nghttp2py.errors exceptions.

from nghttp2py.errors import error_class_for as _error_class_for


cdef object error_from_code(int code):
    """The exception for a libnghttp2 error code, with the library's message."""
    cdef bytes message = nghttp2_strerror(code)
    return _error_class_for(code)(message.decode("ascii", "replace"), code)


cdef inline int check(int code) except -1:
    """Raise the mapped exception when a libnghttp2 call returned an error."""
    if code < 0:
        raise error_from_code(code)
    return code
