// SD Cloud: DOM glue only (the extension never calls the middleware from the page).
// When "Generate in the cloud" is ticked in a tab, that tab's Generate button says so.
(function () {
    const TABS = ["txt2img", "img2img"];

    function label(tab) {
        const box = gradioApp().querySelector(`#script_${tab}_sd_cloud_enabled input[type=checkbox]`);
        const button = gradioApp().getElementById(`${tab}_generate`);
        if (!box || !button) return;
        if (button.dataset.sdcloudLabel === undefined) button.dataset.sdcloudLabel = button.textContent;
        const cloud = box.checked;
        button.textContent = cloud ? "Generate (cloud)" : button.dataset.sdcloudLabel;
        button.title = cloud ? "Runs on SD Cloud, not on this machine" : "";
        button.classList.toggle("sdcloud-generate", cloud);
    }

    function wire() {
        for (const tab of TABS) {
            const box = gradioApp().querySelector(`#script_${tab}_sd_cloud_enabled input[type=checkbox]`);
            if (box && !box.dataset.sdcloudWired) {
                box.dataset.sdcloudWired = "1";
                box.addEventListener("change", () => label(tab));
            }
            label(tab);
        }
    }

    if (typeof onUiLoaded === "function") onUiLoaded(wire);
    // pasted infotext ("Send to txt2img") sets the box without a change event the page sees
    if (typeof onUiUpdate === "function") onUiUpdate(() => TABS.forEach(label));
})();
