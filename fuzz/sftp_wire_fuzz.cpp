// What an SFTP server answers (storage/sftp_wire.hpp), read as the SFTP backend reads it from an
// untrusted server. The first byte picks the reply: 0 a packet header, then a VERSION, STATUS,
// HANDLE, ATTRS, NAME, DATA or limits@openssh.com body.
#include "fuzz_support.hpp"
#include "mybackup/storage/sftp_wire.hpp"

namespace {

using namespace mybackup::sftp;

void parse(std::uint8_t which, mybackup::ByteView body) {
  switch (which % 8) {
    case 0: {
      std::uint8_t header[9] = {};
      for (std::size_t i = 0; i < sizeof header && i < body.size(); ++i) {
        header[i] = body[i];
      }
      const PacketHeader parsed = parse_packet_header(header);
      mybackup::fuzz::check(parsed.body_size + 5 <= kLargestPacket, "packets are bounded");
      break;
    }
    case 1:
      for (const auto& [name, version] : parse_version(body)) {
        mybackup::fuzz::check(name.size() + version.size() <= body.size(), "extensions come from the packet");
      }
      break;
    case 2:
      mybackup::fuzz::check(parse_status(body).message.size() <= kMessageLimit, "status messages are cut to size");
      break;
    case 3:
      mybackup::fuzz::check(parse_handle(body).size() + 4 <= body.size(), "a handle comes from the packet");
      break;
    case 4:
      parse_attributes(body);
      break;
    case 5:
      // Every entry takes at least 12 bytes (two lengths and the flags): the count cannot inflate.
      mybackup::fuzz::check(parse_names(body).size() * 12 <= body.size(), "entries come from the packet");
      break;
    case 6: {
      const mybackup::ByteView data = parse_data(body);
      mybackup::fuzz::check(data.data() >= body.data() && data.data() + data.size() <= body.data() + body.size(),
                            "data is a view into the packet");
      break;
    }
    default:
      parse_limits(body);
      break;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) {
    return 0;
  }
  try {
    parse(data[0], mybackup::ByteView(data + 1, size - 1));
  } catch (const MalformedReply& malformed) {
    mybackup::fuzz::check(!malformed.what.empty(), "a malformed reply says why");
  }
  return 0;
}
