# The memory allocator each HTTP/2 session gives libnghttp2 (nghttp2_mem).
#
# Everything goes to malloc, except large zeroed blocks: calloc of a page or
# more is mapped straight from the kernel, whose fresh pages cost no memory
# until written. libnghttp2 1.52 callocs a 4 KiB stream map per session that
# an idle connection never writes; through calloc it would be resident (glibc
# zeroes it), through mmap it is not: a quarter of an idle connection's memory.
# The few such blocks a session holds are remembered in its PageBlocks, so
# that free and realloc know them.


cdef void *page_block_alloc(PageBlocks *blocks, size_t size) noexcept nogil:
    """A fresh zeroed mapping of ``size`` bytes, or NULL (then use calloc)."""
    cdef int i
    cdef void *block
    for i in range(MAX_PAGE_BLOCKS):
        if blocks.ptr[i] == NULL:
            block = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
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
            munmap(block, blocks.size[i])
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
    if size and nmemb >= PAGE_BLOCK_MIN // size and nmemb <= (<size_t>-1) // size:
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
