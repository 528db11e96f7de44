# The memory allocator each HTTP/2 session gives libnghttp2 (nghttp2_mem).
#
# Everything goes to malloc, except blocks of a page or more that an idle
# session never writes all of: those are mapped straight from the kernel, whose
# fresh pages cost no memory until written. In libnghttp2 1.52 they are two:
#
# - the 4 KiB stream map (calloc), which an idle connection never writes.
#   Through calloc it would be resident (glibc zeroes it).
# - the 16,394-byte outbound frame buffer (realloc from NULL), of which an idle
#   connection writes only the first page. From the heap, its other pages are
#   clean only if no earlier block wrote there: malloc's headers and each
#   connection's output buffer (freed once its SETTINGS are out) made one of
#   them resident per connection (4 KiB) as soon as the heap's layout moved.
#
# The few such blocks a session holds are remembered in its PageBlocks, so
# that free and realloc know them.
#
# Freed blocks of those two sizes are kept for the next sessions rather than
# unmapped: a burst of connections would otherwise map and unmap them, and the
# kernel splits and merges the neighbouring mappings every time (most of the
# cost of setting up and tearing down an idle connection). madvise(DONTNEED)
# gives a kept block's memory back while it stays mapped, reading as zeros
# (but for the first page of a few frame buffers: see unmap).

cdef enum:
    # Kept blocks of each size at most (virtual memory only: 64 MiB of address
    # space for stream maps, 320 MiB for frame buffers).
    PAGE_POOL_SIZE = 16384
    # nghttp2 1.52's NGHTTP2_FRAMEBUF_CHUNKLEN: a frame buffer's size.
    FRAME_BUFFER_SIZE = 16394
    # Kept frame buffers whose first page stays resident (1 MiB at most).
    RESIDENT_FRAME_BUFFERS = 256

cdef struct BlockPool:
    size_t length
    void *blocks[PAGE_POOL_SIZE]

cdef BlockPool _stream_map_pool  # blocks of PAGE_BLOCK_MIN
cdef BlockPool _frame_buffer_pool  # blocks of FRAME_BUFFER_SIZE
# Kept frame buffers whose first page is still resident, taken first.
cdef void *_warm_frame_buffers[RESIDENT_FRAME_BUFFERS]
cdef size_t _warm_frame_buffer_count = 0


cdef BlockPool *pool_for(size_t size) noexcept nogil:
    if size == PAGE_BLOCK_MIN:
        return &_stream_map_pool
    if size == FRAME_BUFFER_SIZE:
        return &_frame_buffer_pool
    return NULL


cdef void *map_block(size_t size, bint zeroed) noexcept nogil:
    """A mapping of ``size`` bytes, kept from an earlier session if one fits.
    A warm frame buffer's first page is not zeroed: none is taken if ``zeroed``."""
    global _warm_frame_buffer_count
    cdef BlockPool *pool = pool_for(size)
    if size == FRAME_BUFFER_SIZE and not zeroed and _warm_frame_buffer_count:
        _warm_frame_buffer_count -= 1
        return _warm_frame_buffers[_warm_frame_buffer_count]
    if pool != NULL and pool.length:
        pool.length -= 1
        return pool.blocks[pool.length]
    return mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)


cdef void unmap(void *block, size_t size) noexcept nogil:
    """Give ``block`` back: kept for the next sessions while its pool has room."""
    global _warm_frame_buffer_count
    cdef BlockPool *pool = pool_for(size)
    # Every session writes its frame buffer's first page at once: a few kept
    # keep it, so that a churn of connections neither gives it back nor faults
    # it in again each time (2 us per connection).
    if pool == &_frame_buffer_pool and _warm_frame_buffer_count < RESIDENT_FRAME_BUFFERS \
            and madvise(<char *>block + PAGE_BLOCK_MIN, size - PAGE_BLOCK_MIN,
                        MADV_DONTNEED) == 0:
        _warm_frame_buffers[_warm_frame_buffer_count] = block
        _warm_frame_buffer_count += 1
    elif pool != NULL and pool.length < PAGE_POOL_SIZE \
            and madvise(block, size, MADV_DONTNEED) == 0:
        pool.blocks[pool.length] = block
        pool.length += 1
    else:
        munmap(block, size)


cdef void *page_block_alloc(PageBlocks *blocks, size_t size, bint zeroed) noexcept nogil:
    """A mapping of ``size`` bytes for the session, or NULL (then use the heap)."""
    cdef int i
    cdef void *block
    for i in range(MAX_PAGE_BLOCKS):
        if blocks.ptr[i] == NULL:
            block = map_block(size, zeroed)
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
        block = page_block_alloc(<PageBlocks *>mem_user_data, nmemb * size, True)
        if block != NULL:
            return block
    return calloc(nmemb, size)


cdef void *mem_realloc(void *block, size_t size, void *mem_user_data) noexcept nogil:
    cdef PageBlocks *blocks = <PageBlocks *>mem_user_data
    cdef size_t old_size = page_block_size(blocks, block)
    cdef void *moved
    if block == NULL and size >= PAGE_BLOCK_MIN:  # a new frame buffer
        moved = page_block_alloc(blocks, size, False)
        if moved != NULL:
            return moved
    if not old_size:
        return realloc(block, size)
    moved = malloc(size)
    if moved != NULL:
        memcpy(moved, block, old_size if old_size < size else size)
        page_block_free(blocks, block)
    return moved
