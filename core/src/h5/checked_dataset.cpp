#include "h5/checked_dataset.h"

#include <zlib.h>

#include <algorithm>
#include <limits>
#include <string>
#include <vector>

#include "h5/bounded_deflate.h"
#include "kvq/base/error.h"

namespace kvq::h5 {
namespace {

// Pipeline positions of the filters a dataset may use (-1: absent). Only this
// order is accepted: it is what h5py and our writers produce, and it fixes the size
// every stage must decode to (fletcher32 strips 4 bytes, deflate yields the chunk).
struct FilterPlan {
  int shuffle = -1;
  int deflate = -1;
  int fletcher32 = -1;
};

std::string dimsText(const std::vector<hsize_t>& dims) {
  std::string text = "[";
  for (size_t i = 0; i < dims.size(); ++i) text += (i > 0 ? ", " : "") + std::to_string(dims[i]);
  return text + "]";
}

// "the chunk at [1024, 0, 0] (tokens [1024, 2048))"
std::string chunkLabel(const std::vector<hsize_t>& offset, const StorageInfo& info, const char* rowName) {
  const hsize_t end = std::min(offset[0] + info.chunk[0], info.dims[0]);
  return "the chunk at " + dimsText(offset) + " (" + rowName + " [" + std::to_string(offset[0]) + ", " +
         std::to_string(end) + "))";
}

// Visits the offset of every chunk whose rows intersect [rowBegin, rowEnd), in
// row-major order; stops when `visit` returns false.
template <typename Visit>
void forEachChunk(const StorageInfo& info, hsize_t rowBegin, hsize_t rowEnd, Visit&& visit) {
  const size_t rank = info.dims.size();
  if (rank == 0 || info.chunk.size() != rank) return;
  std::vector<hsize_t> offset(rank, 0);
  offset[0] = rowBegin - rowBegin % info.chunk[0];
  while (offset[0] < rowEnd) {
    if (!visit(offset)) return;
    size_t d = rank;
    while (d-- > 0) {
      offset[d] += info.chunk[d];
      if (d == 0 || offset[d] < info.dims[d]) break;
      offset[d] = 0;
    }
  }
}

bool errorStackMentions(const char* text) {
  struct Search {
    const char* text;
    bool found;
  } search{text, false};
  auto visit = [](unsigned, const H5E_error2_t* err, void* data) -> herr_t {
    auto* s = static_cast<Search*>(data);
    if (err != nullptr && err->desc != nullptr && std::string(err->desc).find(s->text) != std::string::npos) {
      s->found = true;
    }
    return 0;
  };
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, visit, &search);
  return search.found;
}

FilterPlan checkFilters(hid_t dcpl, const Location& where) {
  const int count = H5Pget_nfilters(dcpl);
  if (count < 0) throwBadInput(where.file, where.path, "has an unreadable filter pipeline");
  FilterPlan plan;
  int last = -1;  // 0 shuffle, 1 deflate, 2 fletcher32: each must come after the previous
  for (int i = 0; i < count; ++i) {
    unsigned flags = 0, config = 0;
    size_t cdCount = 8;
    unsigned cdValues[8] = {};
    char name[64] = "";
    const H5Z_filter_t id = H5Pget_filter2(dcpl, static_cast<unsigned>(i), &flags, &cdCount, cdValues,
                                           sizeof name, name, &config);
    int rank = -1;
    if (id == H5Z_FILTER_SHUFFLE) rank = 0;
    if (id == H5Z_FILTER_DEFLATE) rank = 1;
    if (id == H5Z_FILTER_FLETCHER32) rank = 2;
    if (rank < 0) {
      throwBadInput(where.file, where.path,
                    "uses filter " + std::to_string(id) + " (" + quoteForMessage(name) +
                        "); only shuffle, deflate (gzip) and fletcher32 are accepted");
    }
    if (rank <= last) {
      throwBadInput(where.file, where.path,
                    "lists its filters in an unusual order or twice (accepted: shuffle, deflate, fletcher32, "
                    "in that order)");
    }
    last = rank;
    (rank == 0 ? plan.shuffle : rank == 1 ? plan.deflate : plan.fletcher32) = i;
  }
  return plan;
}

uint64_t fileSizeOf(hid_t dataset) {
  const File file(H5Iget_file_id(dataset));
  hsize_t size = 0;
  if (!file || H5Fget_filesize(file.get(), &size) < 0) return 0;
  return size;
}

void checkPlacement(haddr_t addr, uint64_t bytes, uint64_t fileSize, const Location& where,
                    const std::string& what) {
  if (addr == HADDR_UNDEF || addr > fileSize || bytes > fileSize - addr) {
    throwBadInput(where.file, where.path,
                  what + " lies past the end of the file (" + std::to_string(bytes) + " bytes at offset " +
                      std::to_string(addr) + " of a " + std::to_string(fileSize) + "-byte file)");
  }
}

void checkContiguous(hid_t ds, const StorageInfo& info, uint64_t nominal, const Location& where) {
  H5D_space_status_t status = H5D_SPACE_STATUS_ERROR;
  if (H5Dget_space_status(ds, &status) < 0 || status != H5D_SPACE_STATUS_ALLOCATED) {
    throwBadInput(where.file, where.path,
                  "declared " + dimsText(info.dims) + " but its data was never written");
  }
  const hsize_t stored = H5Dget_storage_size(ds);
  if (stored != nominal) {
    throwBadInput(where.file, where.path,
                  "stores " + std::to_string(stored) + " bytes of data, but its shape and type need " +
                      std::to_string(nominal));
  }
  checkPlacement(H5Dget_offset(ds), stored, fileSizeOf(ds), where, "its data");
}

// The stored size one chunk may have, given the filters that were not skipped for it.
void checkChunkSize(hsize_t stored, unsigned mask, const FilterPlan& plan, uint64_t nominal,
                    const Location& where, const std::string& label) {
  auto active = [mask](int index) {
    return index >= 0 && (mask & (1U << static_cast<unsigned>(index))) == 0;
  };
  const uint64_t checksum = active(plan.fletcher32) ? 4 : 0;
  if (active(plan.deflate)) {
    const uint64_t most = compressBound(static_cast<uLong>(nominal)) + checksum;
    if (stored <= checksum || stored > most) {
      throwBadInput(where.file, where.path,
                    label + " is stored in " + std::to_string(stored) +
                        " bytes, which cannot hold a compressed chunk of " + std::to_string(nominal) +
                        " bytes (at most " + std::to_string(most) + ")");
    }
  } else if (stored != nominal + checksum) {
    throwBadInput(where.file, where.path,
                  label + " is stored in " + std::to_string(stored) + " bytes, but its nominal size is " +
                      std::to_string(nominal + checksum) + " bytes (a short or long chunk)");
  }
}

void checkChunks(hid_t ds, const StorageInfo& info, const FilterPlan& plan, const Location& where,
                 const char* rowName) {
  hsize_t expected = 1;
  for (size_t d = 0; d < info.dims.size(); ++d)
    expected *= (info.dims[d] + info.chunk[d] - 1) / info.chunk[d];
  hsize_t stored = 0;
  const Dataspace space(H5Dget_space(ds));  // HDF5 1.10 refuses H5S_ALL here
  if (!space || H5Dget_num_chunks(ds, space.get(), &stored) < 0) {
    throwBadInput(where.file, where.path, "cannot list its chunks: " + lastErrorText());
  }
  if (stored != expected) {
    throwBadInput(where.file, where.path,
                  "declared " + dimsText(info.dims) + " but its data was never (fully) written (" +
                      std::to_string(stored) + " of " + std::to_string(expected) + " chunks stored)");
  }
  const uint64_t fileSize = fileSizeOf(ds);
  forEachChunk(info, 0, info.dims[0], [&](const std::vector<hsize_t>& offset) {
    unsigned mask = 0;
    haddr_t addr = HADDR_UNDEF;
    hsize_t bytes = 0;
    const std::string label = chunkLabel(offset, info, rowName);
    if (H5Dget_chunk_info_by_coord(ds, offset.data(), &mask, &addr, &bytes) < 0 || addr == HADDR_UNDEF) {
      throwBadInput(where.file, where.path, label + " was never written");
    }
    checkChunkSize(bytes, mask, plan, info.chunkBytes, where, label);
    checkPlacement(addr, bytes, fileSize, where, label);
    return true;
  });
}

// Chunk dims and their nominal byte size; refuses zero or oversized chunks.
void readChunkShape(hid_t dcpl, size_t typeBytes, StorageInfo& info, const Location& where) {
  const int rank = static_cast<int>(info.dims.size());
  info.chunk.assign(info.dims.size(), 0);
  if (H5Pget_chunk(dcpl, rank, info.chunk.data()) != rank) {
    throwBadInput(where.file, where.path, "has chunks of another rank than its data");
  }
  uint64_t bytes = typeBytes;
  for (const hsize_t c : info.chunk) {
    if (c == 0) throwBadInput(where.file, where.path, "has a chunk dimension of 0");
    if (c > kMaxChunkBytes || bytes > kMaxChunkBytes / c) {
      throwBadInput(where.file, where.path,
                    "has chunks of " + dimsText(info.chunk) + " elements, over the limit of " +
                        std::to_string(kMaxChunkBytes) + " bytes per chunk");
    }
    bytes *= c;
  }
  info.chunkBytes = bytes;
}

}  // namespace

StorageInfo checkStorage(hid_t ds, const Location& where, const char* rowName) {
  StorageInfo info;
  const PropList dcpl(H5Dget_create_plist(ds));
  const Datatype type(H5Dget_type(ds));
  const Dataspace space(H5Dget_space(ds));
  const int rank = space ? H5Sget_simple_extent_ndims(space.get()) : -1;
  if (!dcpl || !type || rank < 1)
    throwBadInput(where.file, where.path, "cannot be inspected: " + lastErrorText());
  info.dims.assign(static_cast<size_t>(rank), 0);
  H5Sget_simple_extent_dims(space.get(), info.dims.data(), nullptr);
  if (H5Pget_external_count(dcpl.get()) != 0) {
    throwBadInput(where.file, where.path,
                  "keeps its data in external raw files; refused, as that would read files the user never "
                  "named");
  }
  const size_t typeBytes = H5Tget_size(type.get());
  uint64_t nominal = typeBytes;
  for (const hsize_t d : info.dims) {
    if (d != 0 && nominal > std::numeric_limits<uint64_t>::max() / d) {
      throwBadInput(where.file, where.path, "shape " + dimsText(info.dims) + " overflows a 64-bit byte size");
    }
    nominal *= d;
  }
  if (nominal == 0) return info;
  switch (H5Pget_layout(dcpl.get())) {
    case H5D_COMPACT:
      if (H5Dget_storage_size(ds) != nominal)
        throwBadInput(where.file, where.path, "compact data of the wrong size");
      return info;
    case H5D_CONTIGUOUS:
      checkContiguous(ds, info, nominal, where);
      return info;
    case H5D_CHUNKED:
      break;
    case H5D_VIRTUAL:
      throwBadInput(
          where.file, where.path,
          "is a virtual dataset (its data lives in other files); refused, the file must hold its own "
          "data");
    default:
      throwBadInput(where.file, where.path, "has an unknown storage layout");
  }
  readChunkShape(dcpl.get(), typeBytes, info, where);
  const FilterPlan plan = checkFilters(dcpl.get(), where);
  info.fletcher32 = plan.fletcher32 >= 0;
  checkChunks(ds, info, plan, where, rowName);
  return info;
}

namespace {

// After a failed read: the first chunk within the rows that fails on its own, with
// why, or "" when none does (the failure was not one chunk's).
std::string findFailingChunk(hid_t ds, const StorageInfo& info, hid_t memType, hsize_t rowBegin,
                             hsize_t rowEnd, const char* rowName) {
  if (info.chunk.empty()) return "";
  const size_t rank = info.dims.size();
  std::vector<unsigned char> scratch;
  std::string found;
  forEachChunk(info, rowBegin, rowEnd, [&](const std::vector<hsize_t>& offset) {
    std::vector<hsize_t> count(rank);
    uint64_t elements = 1;
    for (size_t d = 0; d < rank; ++d) {
      count[d] = std::min(info.chunk[d], info.dims[d] - offset[d]);
      elements *= count[d];
    }
    scratch.resize(elements * H5Tget_size(memType));
    Dataspace fileSpace(H5Dget_space(ds));
    Dataspace memSpace(H5Screate_simple(static_cast<int>(rank), count.data(), nullptr));
    const DecodeLimit limit(info.chunkBytes);
    if (H5Sselect_hyperslab(fileSpace.get(), H5S_SELECT_SET, offset.data(), nullptr, count.data(), nullptr) <
            0 ||
        H5Dread(ds, memType, memSpace.get(), fileSpace.get(), H5P_DEFAULT, scratch.data()) >= 0) {
      return true;
    }
    const std::string refusal = takeDecodeRefusal();
    const std::string label = chunkLabel(offset, info, rowName);
    if (!refusal.empty()) {
      found = label + " " + refusal;
    } else if (errorStackMentions("Fletcher32")) {
      found = "checksum mismatch (Fletcher-32) in " + label + ": the file is damaged";
    } else {
      found = label + " cannot be read: " + lastErrorText();
    }
    return false;
  });
  return found;
}

}  // namespace

void readChecked(hid_t ds, const StorageInfo& info, hid_t memType, hid_t memSpace, hid_t fileSpace,
                 void* buffer, const Location& where, const char* rowName, hsize_t rowBegin,
                 hsize_t rowCount) {
  {
    const DecodeLimit limit(info.chunkBytes);
    if (H5Dread(ds, memType, memSpace, fileSpace, H5P_DEFAULT, buffer) >= 0) return;
  }
  const std::string detail = lastErrorText();
  const std::string chunk = findFailingChunk(ds, info, memType, rowBegin, rowBegin + rowCount, rowName);
  if (!chunk.empty()) throwBadInput(where.file, where.path, chunk);
  throwBadInput(where.file, where.path,
                std::string("cannot read ") + rowName + " [" + std::to_string(rowBegin) + ", " +
                    std::to_string(rowBegin + rowCount) + "): " + detail);
}

}  // namespace kvq::h5
