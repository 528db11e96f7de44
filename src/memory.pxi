# The memory allocator each HTTP/2 session gives libnghttp2 (nghttp2_mem).
#
# Everything goes to malloc, except large zeroed blocks: calloc of a page or
# more is mapped straight from the kernel, whose fresh pages cost no memory
# until written. libnghttp2 1.52 callocs a 4 KiB stream map per session that
# an idle connection never writes; through calloc it would be resident (glibc
# zeroes it), through mmap it is not: a quarter of an idle connection's memory.
# The few such blocks a session holds are remembered in its PageBlocks, so
# that free and realloc know them.
#
# Freed page-sized blocks are kept for the next sessions rather than unmapped:
# a burst of connections would otherwise map and unmap one each, and the
# kernel splits and merges the neighbouring mappings every time (most of the
# cost of setting up and tearing down an idle connection). madvise(DONTNEED)
# gives a kept block's memory back while it stays mapped, reading as zeros.

cdef enum:
    # Kept blocks at most (virtual memory only: 64 MiB of address space).
    PAGE_POOL_SIZE = 16384

cdef void *_page_pool[PAGE_POOL_SIZE]
cdef size_t _page_pool_length = 0


cdef void *map_zeroed(size_t size) noexcept nogil:
    """A zeroed mapping of ``size`` bytes, kept from an earlier session if one fits."""
    global _page_pool_length
    if size == PAGE_BLOCK_MIN and _page_pool_length:
        _page_pool_length -= 1
        return _page_pool[_page_pool_length]
    return mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)


cdef void unmap(void *block, size_t size) noexcept nogil:
    """Give ``block`` back: kept for the next sessions while the pool has room."""
    global _page_pool_length
    if size == PAGE_BLOCK_MIN and _page_pool_length < PAGE_POOL_SIZE \
            and madvise(block, size, MADV_DONTNEED) == 0:
        _page_pool[_page_pool_length] = block
        _page_pool_length += 1
    else:
        munmap(block, size)


cdef void *page_block_alloc(PageBlocks *blocks, size_t size) noexcept nogil:
    """A fresh zeroed mapping of ``size`` bytes, or NULL (then use calloc)."""
    cdef int i
    cdef void *block
    for i in range(MAX_PAGE_BLOCKS):
        if blocks.ptr[i] == NULL:
            block = map_zeroed(size)
            if block == MAP_FAILED:
                return NULL
            blocks.ptr[i] = block
            blocks.size[i] = size
            return block
    return NULL


cdef size_t page_block_size(PageBlocks *blocks, void *block) noexcept nogil:
    """The size of ``block`` if it is one of the session's mappings, else 0."""
    cdef int i
    if block == NULL or (<uintptr_t>block) % PAGE_BLOCK_MIN:
        return 0  # mappings are page-aligned; nearly every malloc block is not
    for i in range(MAX_PAGE_BLOCKS):
        if blocks.ptr[i] == block:
            return blocks.size[i]
    return 0


cdef void page_block_free(PageBlocks *blocks, void *block) noexcept nogil:
    cdef int i
    for i in range(MAX_PAGE_BLOCKS):
        if blocks.ptr[i] == block:
            unmap(block, blocks.size[i])
            blocks.ptr[i] = NULL
            blocks.size[i] = 0
            return


cdef void *mem_malloc(size_t size, void *mem_user_data) noexcept nogil:
    return malloc(size)


cdef void mem_free(void *block, void *mem_user_data) noexcept nogil:
    cdef PageBlocks *blocks = <PageBlocks *>mem_user_data
    if page_block_size(blocks, block):
        page_block_free(blocks, block)
    else:
        free(block)


cdef void *mem_calloc(size_t nmemb, size_t size, void *mem_user_data) noexcept nogil:
    cdef void *block
    # A page or more (not nmemb >= PAGE_BLOCK_MIN // size, which rounds down:
    # it mapped the 2,928-byte session struct, written at once, a page each).
    if size and nmemb <= (<size_t>-1) // size and nmemb * size >= PAGE_BLOCK_MIN:
        block = page_block_alloc(<PageBlocks *>mem_user_data, nmemb * size)
        if block != NULL:
            return block
    return calloc(nmemb, size)


cdef void *mem_realloc(void *block, size_t size, void *mem_user_data) noexcept nogil:
    cdef PageBlocks *blocks = <PageBlocks *>mem_user_data
    cdef size_t old_size = page_block_size(blocks, block)
    cdef void *moved
    if not old_size:
        return realloc(block, size)
    moved = malloc(size)
    if moved != NULL:
        memcpy(moved, block, old_size if old_size < size else size)
        page_block_free(blocks, block)
    return moved
