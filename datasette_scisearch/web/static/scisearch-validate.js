// datasette-scisearch: experts validating tags, a layer over plain HTML forms.
// Without this file every button is a form post that comes back to the page; with it the same forms are sent
// with fetch() (the page stays where it is) and the keyboard drives the page:
//   j / k  next / previous tag (item page) or item (queue)      a  accept      r  reject
//   e      edit the current tag        x  select the current item (queue)      n  add a tag / the tag field
//   ?      show or hide these keys     Esc  leave a field, close the help
// Every text from the server is put in the page with textContent, never as HTML.
(function () {
  "use strict";

  var queue = document.querySelector(".scisearch-queue-page");
  var itemTags = document.querySelector(".scisearch-tags.scisearch-editable");
  if (!queue && !itemTags) return;

  function announce(message, isError) {
    var region = document.querySelector(".scisearch-validate-status");
    if (!region) return;
    region.textContent = message;
    region.classList.toggle("is-error", Boolean(isError));
  }

  // -- Sending the forms -----------------------------------------------------------------------------

  function send(form, submitter) {
    var body = new URLSearchParams(new FormData(form));
    if (submitter && submitter.name) body.set(submitter.name, submitter.value);
    // form.action would be the control named "action": these forms have one.
    return fetch(form.getAttribute("action"), {
      method: "POST",
      body: body,
      credentials: "same-origin",
      headers: { Accept: "application/json" },
    }).then(function (response) {
      return response
        .json()
        .catch(function () {
          // Datasette's own refusals (a missing CSRF token) are not JSON.
          return { ok: false, error: "The server refused the change (" + response.status + "). Reload the page and try again." };
        });
    });
  }

  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!form.classList || !form.classList.contains("scisearch-tag-form")) return;
    event.preventDefault();
    var submitter = event.submitter;
    form.classList.add("is-busy");
    send(form, submitter)
      .then(function (result) {
        if (!result.ok) {
          announce(result.error || "The change was not made.", true);
          return;
        }
        if (result.undone !== undefined) bulkUndone(result);
        else if (result.changes !== undefined) bulkDone(result);
        else if (result.action === "add") added(form, result);
        else changed(result);
      })
      .catch(function () {
        announce("Could not reach the server; nothing was changed.", true);
      })
      .then(function () {
        form.classList.remove("is-busy");
      });
  });

  // -- The item page ---------------------------------------------------------------------------------

  function chipOf(tagId) {
    return document.querySelector('.scisearch-tag[data-tag-id="' + tagId + '"]');
  }

  function showTag(chip, tag) {
    chip.className = chip.className.replace(/\bstatus-\w+/, "status-" + tag.status);
    chip.dataset.status = tag.status;
    chip.dataset.tag = tag.tag;
    chip.querySelector(".scisearch-tag-text").textContent = tag.tag;
    var status = chip.querySelector(".scisearch-tag-status");
    if (status) {
      status.textContent = tag.status;
      status.hidden = tag.status === "machine";
    }
    var accept = chip.querySelector(".scisearch-accept");
    var reject = chip.querySelector(".scisearch-reject");
    if (accept) accept.disabled = tag.status === "accepted";
    if (reject) reject.disabled = tag.status === "rejected";
    var edit = chip.querySelector(".scisearch-tag-edit");
    if (edit) {
      edit.open = false;
      edit.querySelector("input[name=text]").value = tag.tag;
    }
  }

  function addHistory(chip, entry) {
    var details = chip.querySelector(".scisearch-tag-history");
    if (!details) {
      details = document.createElement("details");
      details.className = "scisearch-tag-history";
      details.appendChild(document.createElement("summary"));
      details.appendChild(document.createElement("ol"));
      chip.appendChild(details);
    }
    var list = details.querySelector("ol");
    var line = document.createElement("li");
    line.dataset.historyId = entry.id;
    var when = document.createElement("time");
    when.dateTime = entry.changed_at;
    // The server writes the time in ISO 8601 in the facility's zone, as the page shows every time.
    when.textContent = entry.changed_shown || entry.changed_at;
    var who = document.createElement("b");
    who.textContent = entry.actor;
    line.append(when, " ", who, " " + entry.action + ": ");
    if (entry.old_value !== null) {
      var old = document.createElement("q");
      old.textContent = entry.old_value;
      line.append(old, " → ");
    }
    var now = document.createElement("q");
    now.textContent = entry.new_value;
    line.append(now);
    list.insertBefore(line, list.firstChild);
    details.querySelector("summary").textContent = "history (" + list.children.length + ")";
  }

  function changed(result) {
    var chip = chipOf(result.tag.id);
    if (!chip) return;
    showTag(chip, result.tag);
    addHistory(chip, result.history);
    // The undo button belonged to the previous change; the page offers a fresh one on its next load.
    chip.querySelectorAll(".scisearch-undo").forEach(function (form) {
      form.remove();
    });
    var verbs = { accept: "Accepted", reject: "Rejected", edit: "Changed to" };
    var verb = verbs[result.action] || "Undone:";
    announce(verb + " '" + result.tag.tag + "'" + (verb === "Undone:" ? " is " + result.tag.status + " again." : "."));
    chip.focus();
  }

  function added(form, result) {
    var groups = itemTags.querySelector(".scisearch-tag-groups");
    if (!groups) {
      groups = document.createElement("div");
      groups.className = "scisearch-tag-groups";
      itemTags.insertBefore(groups, form);
      var none = itemTags.querySelector(".scisearch-note");
      if (none) none.remove();
    }
    // The added tag joins its category's group ("Other" for words no tagger has used), made if missing.
    var category = result.tag.category || "other";
    var group = null;
    groups.querySelectorAll(".scisearch-tag-group").forEach(function (each) {
      if (each.dataset.category === category) group = each;
    });
    if (!group) {
      group = document.createElement("div");
      group.className = "scisearch-tag-group";
      group.dataset.category = category;
      var heading = document.createElement("h3");
      heading.textContent = result.tag.category_label || category;
      group.append(heading, document.createElement("ul"));
      groups.insertBefore(group, groups.firstChild);
    }
    var chip = document.createElement("li");
    chip.className = "scisearch-tag status-added";
    chip.dataset.tagId = result.tag.id;
    chip.dataset.tag = result.tag.tag;
    chip.dataset.status = "added";
    chip.tabIndex = -1;
    var text = document.createElement("span");
    text.className = "scisearch-tag-text";
    text.textContent = result.tag.tag;
    var status = document.createElement("span");
    status.className = "scisearch-tag-status";
    status.textContent = "added";
    chip.append(text, status);
    group.querySelector("ul").appendChild(chip);
    addHistory(chip, result.history);
    form.querySelector("input[name=text]").value = "";
    announce("Added '" + result.tag.tag + "'.");
  }

  // -- The queue -------------------------------------------------------------------------------------

  function bulkDone(result) {
    var touched = {};
    result.changes.forEach(function (change) {
      touched[change.tag.item_type + ":" + change.tag.item_id] = true;
    });
    document.querySelectorAll(".scisearch-queue-card input[name=item]").forEach(function (box) {
      if (touched[box.value]) {
        box.checked = false;
        box.closest(".scisearch-queue-card").classList.add("is-done");
      }
    });
    var verbs = { accept: "Accepted", reject: "Rejected", add: "Added" };
    var message = verbs[result.action] + " '" + result.tag + "' on " + result.changed + " tag" + (result.changed === 1 ? "" : "s");
    if (result.skipped.length) {
      message += "; skipped " + result.skipped.map(function (s) { return s.item_id + " (" + s.reason + ")"; }).join(", ");
    }
    announce(message + ".");
    offerUndo(result.changes.map(function (change) { return change.history.id; }));
  }

  // After a bulk change: one button takes it back on every item it touched.
  function offerUndo(historyIds) {
    var form = document.getElementById("scisearch-bulk-undo");
    if (!form) return;
    form.querySelectorAll("input[name=history], input[name=history_range]").forEach(function (input) { input.remove(); });
    historyIds.forEach(function (id) {
      var input = document.createElement("input");
      input.type = "hidden";
      input.name = "history";
      input.value = id;
      form.appendChild(input);
    });
    form.hidden = historyIds.length === 0;
  }

  function bulkUndone(result) {
    result.undone.forEach(function (change) {
      var card = document.querySelector(
        '.scisearch-queue-card[data-item-type="' + change.tag.item_type + '"][data-item-id="' + change.tag.item_id + '"]'
      );
      if (card) card.classList.remove("is-done");
      var chip = chipOf(change.tag.id);
      if (chip) showTag(chip, change.tag);
    });
    offerUndo([]);
    var message = "Undid " + result.undone.length + " change" + (result.undone.length === 1 ? "" : "s");
    if (result.skipped.length) message += "; " + result.skipped.length + " had changed again since";
    announce(message + ".");
  }

  if (queue) {
    queue.addEventListener("click", function (event) {
      if (event.target.closest("form")) return; // a card's own accept or reject
      var chip = event.target.closest(".scisearch-queue-tags li[data-tag]");
      var field = document.querySelector("#scisearch-bulk input[name=tag]");
      if (!chip || !field) return;
      field.value = chip.dataset.tag;  // one click names the tag to decide on
      var box = chip.closest(".scisearch-queue-card").querySelector("input[name=item]");
      if (box) box.checked = true;
    });
    var selectAll = document.querySelector(".scisearch-select-all");
    if (selectAll) {
      selectAll.hidden = false;
      selectAll.addEventListener("click", function () {
        var boxes = document.querySelectorAll(".scisearch-queue-card input[name=item]");
        var every = Array.prototype.every.call(boxes, function (box) { return box.checked; });
        boxes.forEach(function (box) { box.checked = !every; });
      });
    }
  }

  // -- Keys ------------------------------------------------------------------------------------------

  var current = -1;

  function targets() {
    return Array.prototype.slice.call(
      document.querySelectorAll(queue ? ".scisearch-queue-card" : ".scisearch-editable .scisearch-tag[data-tag-id]")
    );
  }

  function move(step) {
    var all = targets();
    if (!all.length) return null;
    current = Math.max(0, Math.min(all.length - 1, current + step));
    all.forEach(function (element, index) {
      element.classList.toggle("is-current", index === current);
    });
    all[current].focus();
    all[current].scrollIntoView({ block: "nearest" });
    return all[current];
  }

  function currentTarget() {
    var all = targets();
    var focused = document.activeElement && document.activeElement.closest
      ? document.activeElement.closest(queue ? ".scisearch-queue-card" : ".scisearch-tag[data-tag-id]")
      : null;
    if (focused && all.indexOf(focused) >= 0) current = all.indexOf(focused);
    return all[current] || move(current < 0 ? 1 : 0);
  }

  function submitWith(form, action) {
    var button = form.querySelector('button[value="' + action + '"]');
    if (!button || button.disabled) return;
    form.requestSubmit(button);
  }

  function decide(action) {
    var target = currentTarget();
    if (!target) return;
    if (!queue) {
      var form = target.querySelector(".scisearch-tag-actions .scisearch-tag-form");
      if (form) submitWith(form, action);
      return;
    }
    var bulk = document.getElementById("scisearch-bulk");
    var field = bulk.querySelector("input[name=tag]");
    if (!field.value.trim()) {
      announce("Name the tag to " + action + " first (n), or click one of an item's tags.", true);
      field.focus();
      return;
    }
    var chosen = document.querySelectorAll(".scisearch-queue-card input[name=item]:checked");
    if (!chosen.length) target.querySelector("input[name=item]").checked = true;
    submitWith(bulk, action);
  }

  function edit() {
    var target = currentTarget();
    var details = target && target.querySelector(".scisearch-tag-edit");
    if (!details) return;
    details.open = true;
    var field = details.querySelector("input[name=text]");
    field.focus();
    field.select();
  }

  function toggleSelection() {
    var target = currentTarget();
    var box = target && target.querySelector("input[name=item]");
    if (box) box.checked = !box.checked;
  }

  function focusNewTag() {
    var field = document.querySelector(queue ? "#scisearch-bulk input[name=tag]" : ".scisearch-add-tag input[name=text]");
    if (field) field.focus();
  }

  function toggleHelp() {
    var help = document.querySelector(".scisearch-keys-help");
    if (help) {
      help.remove();
      return;
    }
    help = document.createElement("div");
    help.className = "scisearch-keys-help";
    help.setAttribute("role", "dialog");
    help.setAttribute("aria-label", "Keyboard shortcuts");
    var keys = queue
      ? [["j / k", "next / previous item"], ["x", "select the item"], ["n", "the tag field"], ["a", "accept the tag on the selected items"], ["r", "reject it on them"]]
      : [["j / k", "next / previous tag"], ["a", "accept"], ["r", "reject"], ["e", "edit its text"], ["n", "add a tag"]];
    keys.push(["?", "show or hide this"], ["Esc", "leave a field"]);
    var list = document.createElement("dl");
    keys.forEach(function (pair) {
      var key = document.createElement("dt");
      var kbd = document.createElement("kbd");
      kbd.textContent = pair[0];
      key.appendChild(kbd);
      var meaning = document.createElement("dd");
      meaning.textContent = pair[1];
      list.append(key, meaning);
    });
    help.appendChild(list);
    document.body.appendChild(help);
  }

  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    var target = event.target;
    var typing = target && (target.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(target.tagName));
    if (event.key === "Escape") {
      var help = document.querySelector(".scisearch-keys-help");
      if (help) help.remove();
      if (typing && target.type !== "checkbox") target.blur();
      return;
    }
    if (typing && target.type !== "checkbox") return;
    var actions = {
      j: function () { move(1); },
      k: function () { move(-1); },
      a: function () { decide("accept"); },
      r: function () { decide("reject"); },
      e: edit,
      x: toggleSelection,
      n: focusNewTag,
      "?": toggleHelp,
    };
    var action = actions[event.key];
    if (!action) return;
    event.preventDefault();
    action();
  });
})();
