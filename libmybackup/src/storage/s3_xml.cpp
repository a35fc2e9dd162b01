#include "mybackup/storage/s3_xml.hpp"

#include <expat.h>

#include <algorithm>
#include <memory>

#include "mybackup/util/error.hpp"

namespace mybackup {

namespace {

/// Collects the text of elements by their path from the root ("ListBucketResult/Contents/Key").
class XmlWalker {
 public:
  virtual ~XmlWalker() = default;

  /// False if the text is not well-formed XML, or has a DOCTYPE.
  bool parse(std::string_view xml) {
    const std::unique_ptr<XML_ParserStruct, decltype(&XML_ParserFree)> parser(XML_ParserCreate("UTF-8"), XML_ParserFree);
    if (!parser) {
      return false;
    }
    XML_SetUserData(parser.get(), this);
    XML_SetElementHandler(parser.get(), &XmlWalker::on_start, &XmlWalker::on_end);
    XML_SetCharacterDataHandler(parser.get(), &XmlWalker::on_text);
    XML_SetStartDoctypeDeclHandler(parser.get(), &XmlWalker::on_doctype);
    parser_ = parser.get();
    const auto status = XML_Parse(parser.get(), xml.data(), static_cast<int>(xml.size()), XML_TRUE);
    parser_ = nullptr;
    return status == XML_STATUS_OK && !refused_;
  }

 protected:
  virtual void element_started(const std::string& path) = 0;
  virtual void element_ended(const std::string& path, const std::string& text) = 0;

 private:
  static void on_start(void* self_pointer, const XML_Char* name, const XML_Char** /*attributes*/) {
    auto* self = static_cast<XmlWalker*>(self_pointer);
    self->path_ += (self->path_.empty() ? "" : "/") + std::string(name);
    self->text_.clear();
    self->element_started(self->path_);
  }

  static void on_end(void* self_pointer, const XML_Char* /*name*/) {
    auto* self = static_cast<XmlWalker*>(self_pointer);
    self->element_ended(self->path_, self->text_);
    self->text_.clear();
    const std::size_t slash = self->path_.rfind('/');
    self->path_.erase(slash == std::string::npos ? 0 : slash);
  }

  static void on_text(void* self_pointer, const XML_Char* text, int length) {
    auto* self = static_cast<XmlWalker*>(self_pointer);
    self->text_.append(text, static_cast<std::size_t>(length));
  }

  static void on_doctype(void* self_pointer, const XML_Char*, const XML_Char*, const XML_Char*, int) {
    auto* self = static_cast<XmlWalker*>(self_pointer);
    self->refused_ = true;
    XML_StopParser(self->parser_, XML_FALSE);
  }

  XML_Parser parser_ = nullptr;
  std::string path_;
  std::string text_;
  bool refused_ = false;
};

class ListPageWalker : public XmlWalker {
 public:
  S3ListPage page;
  bool valid = true;
  bool saw_root = false;

 private:
  void element_started(const std::string& path) override {
    if (path == "ListBucketResult") {
      saw_root = true;
    } else if (path == "ListBucketResult/Contents") {
      current_ = S3ListedObject{};
      has_key_ = false;
    }
  }

  void element_ended(const std::string& path, const std::string& text) override {
    if (path == "ListBucketResult/Contents/Key") {
      current_.key = text;
      has_key_ = !text.empty();
    } else if (path == "ListBucketResult/Contents/Size") {
      valid = valid && parse_size(text, current_.size);
    } else if (path == "ListBucketResult/Contents") {
      valid = valid && has_key_;
      page.objects.push_back(std::move(current_));
    } else if (path == "ListBucketResult/IsTruncated") {
      page.truncated = text == "true";
    } else if (path == "ListBucketResult/NextContinuationToken") {
      page.next_token = text;
    }
  }

  static bool parse_size(const std::string& text, std::uint64_t& size) {
    if (text.empty() || text.size() > 19 || !std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; })) {
      return false;
    }
    size = std::stoull(text);
    return true;
  }

  S3ListedObject current_;
  bool has_key_ = false;
};

class ErrorWalker : public XmlWalker {
 public:
  S3ErrorReply reply;

 private:
  void element_started(const std::string&) override {}
  void element_ended(const std::string& path, const std::string& text) override {
    if (path == "Error/Code") {
      reply.code = printable(text, 64);
    } else if (path == "Error/Message") {
      reply.message = printable(text, 200);
    }
  }

  static std::string printable(const std::string& text, std::size_t limit) {
    std::string out;
    for (const char c : text) {
      if (out.size() == limit) {
        break;
      }
      if (static_cast<unsigned char>(c) >= 0x20 && c != 0x7f) {
        out += c;
      }
    }
    return out;
  }
};

}  // namespace

S3ListPage parse_list_objects_v2(std::string_view xml) {
  ListPageWalker walker;
  if (!walker.parse(xml) || !walker.saw_root || !walker.valid || (walker.page.truncated && walker.page.next_token.empty())) {
    throw Error(ErrorKind::corrupt, "the S3 server's object listing is not a valid ListObjectsV2 page");
  }
  return std::move(walker.page);
}

S3ErrorReply parse_s3_error(std::string_view xml) {
  ErrorWalker walker;
  if (!walker.parse(xml)) {
    return {};
  }
  return walker.reply;
}

}  // namespace mybackup
